"""Search by words (issue 15, point 6, the page's side): offered only when the service lists
"keyword_search" in /v1/meta, sent as GET /v1/objects?q=..., shown as short record cards.
The service's ranking is simulated here until the route exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from web_helpers import PHONE_390


def test_not_offered_when_the_service_has_no_keyword_search(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    meta = v.answer("record_fields")
    assert v.page.is_visible("#words-section") == ("keyword_search" in meta.get("features", []))


def test_words_find_records_and_open_them(visit: Any, server: str, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    with httpx.Client(base_url=server, trust_env=False, headers={"Authorization": f"Bearer {keys['officer']}"}) as c:
        painting = c.get("/v1/objects/SMP-PAINT-01").json()
    v = visit(PHONE_390, touch=True)
    asked: list[str] = []

    def meta_with_words(route: Any) -> None:
        response = route.fetch()
        meta = response.json()
        meta["features"] = sorted(set(meta.get("features", [])) | {"keyword_search"})
        route.fulfill(response=response, json=meta)

    def objects(route: Any) -> None:
        if "q=" not in route.request.url:
            route.continue_()
            return
        asked.append(route.request.url)
        q = parse_qs(urlsplit(route.request.url).query)["q"][0]
        route.fulfill(json=[painting] if q == "starry" else [])

    v.page.route("**/v1/meta", meta_with_words)
    v.page.route("**/v1/objects?*", objects)
    v.page.reload()
    v.sign_in(keys["officer"])
    assert v.page.is_visible("#words-section")
    v.page.fill("#words-input", "starry")
    v.page.press("#words-input", "Enter")
    v.page.wait_for_selector("#words-list li")
    query = parse_qs(urlsplit(asked[-1]).query)
    assert query["q"] == ["starry"] and query["status"] == ["stolen,looted,missing"], query
    assert v.page.inner_text("#words-count") == "Records with these words: 1"
    hit = v.page.locator("#words-list li").first
    text = hit.inner_text()
    assert "The Starry Night" in text and "SMP-PAINT-01" in text and "Stolen" in text and "SAMPLE-2026-0101" in text
    v.wait_images("#words-list img")
    hit.locator("button").tap()
    v.page.wait_for_selector("#record-dialog[open]")
    assert "swirling night sky" in v.page.inner_text("#record-body")
    v.page.keyboard.press("Escape")
    # Including recovered objects drops the status filter; nothing found says so.
    v.page.check("#recovered-input")
    v.page.fill("#words-input", "zzz")
    v.page.press("#words-input", "Enter")
    v.page.wait_for_function("document.getElementById('words-count').textContent === 'No record contains these words.'")
    assert "status" not in parse_qs(urlsplit(asked[-1]).query)
    assert v.page.locator("#words-list li").count() == 0
