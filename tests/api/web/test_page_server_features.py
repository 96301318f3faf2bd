"""The page against the service's own issue-15 features, nothing simulated: a HEIC photo previewed by the
service, search by words, the short reference and the PDF sheet, a sign-in link made by `artefact keys
create --qr`, the catalogue's freshness (issue 16), and a page that survives a failed /v1/meta."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from pypdf import PdfReader

from web_helpers import DESKTOP, PAINTING_QUERY, PHONE_390, QUERIES, start_server

HEIC_QUERY = QUERIES / "query-coin-SMP-COIN-18.heic"


def test_a_heic_photo_gets_the_services_preview(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.sign_in(keys["officer"])
    with v.page.expect_response("**/v1/preview") as answered:
        v.add_photos(HEIC_QUERY)
    assert answered.value.status == 200 and answered.value.headers["content-type"] == "image/jpeg"
    v.wait_images("#photo-list img")
    width, height = v.page.locator("#photo-list img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert max(width, height) <= 1600 and min(width, height) > 100
    assert v.page.is_visible("#photo-list button[data-crop]")  # previewed, so it can be cropped
    v.page.click("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    assert "SMP-COIN-18" in v.page.inner_text("#results")
    v.screenshot("heic-preview-results")


def test_words_typed_without_accents_find_the_record(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.sign_in(keys["officer"])
    assert v.page.is_visible("#words-section")
    v.page.fill("#words-input", "turkiye")  # the records say "Türkiye"
    v.page.press("#words-input", "Enter")
    v.page.wait_for_selector("#words-list li")
    found = v.page.eval_on_selector_all("#words-list li", "els => els.map(e => e.dataset.object)")
    assert sorted(found) == ["SMP-COIN-04", "SMP-COIN-10", "SMP-COIN-16", "SMP-COIN-22"]
    v.wait_images("#words-list img")
    v.page.fill("#words-input", "starry nig")  # prefixes
    v.page.press("#words-input", "Enter")
    v.page.wait_for_function("document.querySelectorAll('#words-list li').length === 1")
    assert "SAMPLE-2026-0101" in v.page.inner_text("#words-list")
    v.page.fill("#words-input", 'NEAR("')  # FTS5 syntax is just text: an answer, never a broken page
    v.page.press("#words-input", "Enter")
    v.page.wait_for_function("document.getElementById('words-count').textContent === 'No record contains these words.'")
    assert v.page.is_hidden("#message")
    v.screenshot("words-search")


def test_the_short_reference_and_the_pdf_sheet(visit: Any, server: str, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(DESKTOP, lang="fr")
    v.sign_in(keys["officer"])
    with v.page.expect_response("**/v1/search/photo") as answered:
        v.search_photo(PAINTING_QUERY)
    answer = answered.value.json()
    assert answer["short_id"] in v.page.inner_text("#search-ref")
    with httpx.Client(base_url=server, trust_env=False, headers={"Authorization": f"Bearer {keys['officer']}"}) as c:
        assert c.get(f"/v1/searches/{answer['short_id']}").json()["search_id"] == answer["search_id"]
    assert v.page.is_visible("#sheet-pdf")
    with v.page.expect_download() as downloaded:
        v.page.click("#sheet-pdf")
    path = downloaded.value.path()
    pdf = PdfReader(str(path))
    text = pdf.pages[0].extract_text()
    assert "SAMPLE-2026-0101" in text and answer["short_id"] in text
    assert "Fiche de recherche" in text  # the officer's language (French), from the page's own table
    assert len(pdf.pages[0].images) >= 2  # the query photo and the catalogue photo
    v.screenshot("sheet-offered-fr")


def test_a_sign_in_link_from_keys_create_qr_signs_in_and_leaves_no_trace(
        visit: Any, server: str, web_home: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    from artefact.api.cli import main

    home, _ = web_home
    capsys.readouterr()
    assert main(["--home", str(home), "--json", "keys", "create", "--name", "qr-officer", "--role", "officer",
                 "--qr", "--url", server]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["link"] == f"{server}/#key={made['key']}"
    v = visit(PHONE_390, touch=True, path=made["link"][len(server):])
    v.page.wait_for_selector("#app-view:not([hidden])")
    assert "qr-officer" in v.page.inner_text("#who")
    assert made["key"] not in v.page.url
    v.page.go_back()  # the entry the link made was replaced: going back never shows the code again
    assert made["key"] not in v.page.url
    assert not any(made["key"] in u for u in v.requests)  # the code never travels in a URL


# -- freshness (issue 16) -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled_server(web_home: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample home as a post holds it after importing an old bundle (its record written as an import writes it)."""
    from artefact.index.catalogue import BUNDLE_META, Catalogue
    from artefact.index.home import Home

    home = tmp_path_factory.mktemp("web-bundled") / "home"
    shutil.copytree(web_home[0], home)
    cat = Catalogue(Home(home).current_catalogue())
    with cat.transaction():
        cat.set_meta(BUNDLE_META, json.dumps({"bundle_id": "B-0042", "kind": "full", "created": "2026-09-01T08:00:00+00:00",
                                              "issuer": "agency", "imported_at": "2026-09-02T08:00:00+00:00",
                                              "change_seq": 1}))
    cat.close()
    base, stop = start_server(home)
    yield base
    stop()


def test_the_page_says_how_old_the_catalogue_is_and_warns(visit: Any, bundled_server: str,
                                                          web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, base=bundled_server)
    v.sign_in(keys["officer"])
    assert v.page.inner_text("#freshness") == "Catalogue as of 2026-09-01, bundle B-0042"
    warning = v.page.inner_text("#freshness-warning")
    assert v.page.is_visible("#freshness-warning") and "older than the 30 days allowed" in warning
    v.screenshot("freshness-stale-en", full_page=False)
    v.page.evaluate("""() => { const s = document.getElementById('lang-select'); s.value = 'fr';
                               s.dispatchEvent(new Event('change')); }""")
    v.page.wait_for_function("document.getElementById('freshness').textContent.startsWith('Catalogue au')")
    assert "B-0042" in v.page.inner_text("#freshness") and "30 jours" in v.page.inner_text("#freshness-warning")
    v.screenshot("freshness-stale-fr", full_page=False)


def test_no_freshness_line_for_a_catalogue_not_from_a_bundle(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    assert v.page.is_hidden("#freshness") and v.page.is_hidden("#freshness-warning")


def test_a_failed_meta_does_not_break_the_page(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.page.route("**/v1/meta", lambda route: route.abort())
    v.page.reload()
    v.sign_in(keys["officer"])  # the page still starts, signs in and shows the catalogue
    assert "objects" in v.page.inner_text("#db-summary")
    v.page.unroute("**/v1/meta")


def test_a_service_without_previews_gets_the_heic_as_it_is(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    """An older service (no "preview" in /v1/meta): no preview is asked for, the photo is sent untouched and found."""
    _, keys = web_home
    v = visit(PHONE_390)

    def meta_without_preview(route: Any) -> None:
        response = route.fetch()
        meta = response.json()
        meta["features"] = [f for f in meta.get("features", []) if f != "preview"]
        route.fulfill(response=response, json=meta)

    v.page.route("**/v1/meta", meta_without_preview)
    v.page.reload()
    v.sign_in(keys["officer"])
    v.add_photos(HEIC_QUERY)
    assert "No preview for this format" in v.page.wait_for_selector("#photo-list li .no-preview").inner_text()
    with v.page.expect_request("**/v1/search/photo"):
        v.page.click("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    assert not any("/v1/preview" in u for u in v.requests)
    assert "SMP-COIN-18" in v.page.inner_text("#results")
