"""Issue 15's service side over real HTTP: short search references, the search sheet (HTML and PDF, every
language), server-made previews of HEIC and TIFF photos, keyword search, and what /v1/meta offers."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from artefact.api.http.audit import SHORT_ALPHABET, AuditLog
from artefact.api.http.lang import languages
from artefact.api.http.security import KeyStore

SHORT = re.compile(r"S-[" + SHORT_ALPHABET + r"]{4,}")


def _search(client: Any, helpers: Any, *photos: bytes, **form: Any) -> dict[str, Any]:
    r = client.post("/v1/search/photo", files=helpers.upload(*photos), data={k: str(v) for k, v in form.items()})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def painting_search(live: Any, helpers: Any, catalogue_jpeg: bytes) -> dict[str, Any]:
    """One officer's search with a catalogue photo of SMP-PAINT-01 (verified, so with an evidence image)."""
    return _search(live.client("officer"), helpers, catalogue_jpeg, k=5)


# -- short references --------------------------------------------------------------------------

def test_every_search_gets_a_short_reference_that_finds_its_record(live: Any, painting_search: dict[str, Any]) -> None:
    out = painting_search
    assert SHORT.fullmatch(out["short_id"]), out["short_id"]
    assert not set(out["short_id"][2:]) & set("0O1I")
    officer = live.client("officer")
    by_long = officer.get(f"/v1/searches/{out['search_id']}").json()
    assert by_long["short_id"] == out["short_id"]
    for typed in (out["short_id"], out["short_id"].lower(), out["short_id"].replace("-", "")):
        r = officer.get(f"/v1/searches/{typed}")
        assert r.status_code == 200 and r.json()["search_id"] == out["search_id"], typed
    # The same access rules as the long id: the officer who searched and admins, nobody else.
    assert live.client("admin").get(f"/v1/searches/{out['short_id']}").status_code == 200
    assert live.client("curator").get(f"/v1/searches/{out['short_id']}").status_code == 404
    evidence = officer.get(f"/v1/searches/{out['short_id']}/evidence/1")
    assert evidence.status_code == 200 and evidence.headers["content-type"] == "image/jpeg"


def test_short_references_are_unique_and_the_audit_chain_stays_intact(tmp_path: Any) -> None:
    audit = AuditLog(tmp_path / "audit.sqlite", tmp_path / "photos", False, 90)
    try:
        shorts = {audit.record_search("k", "text", {"text": str(n)}, {}, 5, 0.5, "no close match", [], "m")["short_id"]
                  for n in range(300)}
        assert len(shorts) == 300 and all(SHORT.fullmatch(s) for s in shorts)
        assert audit.verify().ok
        assert AuditLog.short_form(" s-4f2k ") == "S-4F2K" and AuditLog.short_form("S-4F0K") is None
    finally:
        audit.close()


def test_records_from_before_short_references_keep_their_seal(tmp_path: Any) -> None:
    """An audit log of schema 2 (no short ids) migrates; its chain still verifies, its records have none."""
    import sqlite3

    path = tmp_path / "audit.sqlite"
    audit = AuditLog(path, tmp_path / "photos", False, 90)
    old = audit.record_search("k", "text", {"text": "x"}, {}, 5, 0.5, "no close match", [], "m")["search_id"]
    with audit._lock, audit._transaction():  # sealed and chained as an old version did: without a short id
        audit.db.execute("UPDATE searches SET short_id = NULL")
        audit.db.execute("DELETE FROM trail")
        audit._chain_search(old)
    audit.close()
    db = sqlite3.connect(path)  # back to schema 2: the column gone
    db.execute("DROP INDEX searches_short_id")
    db.execute("ALTER TABLE searches DROP COLUMN short_id")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    audit = AuditLog(path, tmp_path / "photos", False, 90)
    try:
        assert audit.get(old)["short_id"] is None
        new = audit.record_search("k", "text", {"text": "y"}, {}, 5, 0.5, "no close match", [], "m")
        assert SHORT.fullmatch(new["short_id"])
        assert audit.verify().ok, audit.verify()
    finally:
        audit.close()


# -- the sheet ---------------------------------------------------------------------------------

def test_the_sheet_pdf_holds_the_case_and_both_photos(live: Any, painting_search: dict[str, Any]) -> None:
    out = painting_search
    assert out["sheet_pdf_url"] == f"/v1/searches/{out['search_id']}/sheet.pdf"
    officer = live.client("officer")
    case = out["matches"][0]["object"]["fields"]["case_reference"]
    r = officer.get(out["sheet_pdf_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text[:300]
    pdf = PdfReader(io.BytesIO(r.content))
    first = pdf.pages[0]
    text = first.extract_text()
    assert case in text and out["short_id"] in text and out["search_id"] in text
    assert "The Starry Night" in text and "Stolen" in text and "officer" in text
    # one page: the query photo, the catalogue photo and the evidence image (query and match side by side)
    assert len(first.images) == 3, [i.name for i in first.images]
    assert "Signature" in text
    assert len(pdf.pages) == 2 and "Technical details" in pdf.pages[1].extract_text()
    # by the short reference too, and never for another officer
    assert officer.get(f"/v1/searches/{out['short_id']}/sheet.pdf").status_code == 200
    assert live.client("curator").get(out["sheet_pdf_url"]).status_code == 404


@pytest.mark.parametrize("lang", ["ar", "zh", "el", "ru", "tr"])
def test_the_sheet_pdf_speaks_the_officers_language(live: Any, painting_search: dict[str, Any], lang: str) -> None:
    from artefact.api.http.lang import Strings

    t = Strings(lang)
    r = live.client("officer").get(painting_search["sheet_pdf_url"], params={"lang": lang})
    assert r.status_code == 200, r.text[:300]
    text = PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    case = painting_search["matches"][0]["object"]["fields"]["case_reference"]
    assert case in text
    if lang != "ar":  # Arabic is shaped into presentation forms, which text extraction returns as such
        assert t("print_heading") in text and t("status_stolen") in text, text[:400]


def test_the_sheet_page_in_every_language(live: Any, painting_search: dict[str, Any]) -> None:
    from artefact.api.http.lang import Strings

    officer = live.client("officer")
    url = f"/v1/searches/{painting_search['search_id']}/sheet"
    case = painting_search["matches"][0]["object"]["fields"]["case_reference"]
    assert len(languages()) == 11
    for lang in languages():
        r = officer.get(url, params={"lang": lang})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        t = Strings(lang)
        assert f'lang="{lang}"' in page and ('dir="rtl"' in page) == (lang == "ar")
        verdict = "verdict_" + painting_search["matches"][0]["verdict"].split()[0]  # strong or possible
        assert t("print_heading") in page and t(verdict) in page and case in page, lang
        assert page.count('src="data:image/jpeg;base64,') >= 3  # photos inline: the sheet loads nothing
        assert "img-src data:" in r.headers["content-security-policy"]
    unknown = officer.get(url, params={"lang": "xx"})
    assert unknown.status_code == 200 and 'lang="en"' in unknown.text


def test_a_text_search_has_a_sheet_without_photos(live: Any) -> None:
    officer = live.client("officer")
    out = officer.post("/v1/search/text", json={"text": "a painting of a night sky"}).json()
    r = officer.get(out["sheet_pdf_url"])
    assert r.status_code == 200 and out["search_id"] in PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    assert officer.get(out["sheet_url"]).status_code == 200


# -- previews ----------------------------------------------------------------------------------

def _rotated(fmt: str) -> bytes:
    """A 400x300 photo stored sideways with EXIF orientation 6 (shown upright it is 300 wide, 400 tall)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    img = Image.new("RGB", (400, 300), (200, 30, 30))
    img.paste((20, 20, 220), (0, 0, 200, 300))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("fmt,mime", [("HEIF", "image/heic"), ("TIFF", "image/tiff")])
def test_preview_is_an_upright_jpeg_of_a_photo_the_browser_cannot_show(live: Any, fmt: str, mime: str) -> None:
    officer = live.client("officer")
    r = officer.post("/v1/preview", files={"photo": (f"p.{fmt.lower()}", _rotated(fmt), mime)}, data={"max_side": "200"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.format == "JPEG" and img.size == (150, 200)  # turned upright, long side 200
        top, bottom = img.getpixel((75, 10)), img.getpixel((75, 190))
    assert top[2] > top[0] and bottom[0] > bottom[2]  # the blue half now on top: rotated the right way


def test_preview_refuses_what_a_search_refuses(live: Any) -> None:
    officer = live.client("officer")
    assert officer.post("/v1/preview", files={"photo": ("x.heic", b"not a photo", "image/heic")}).status_code == 415
    big = officer.post("/v1/preview", files={"photo": ("p.heic", _rotated("HEIF"), "image/heic")}, data={"max_side": "99999"})
    assert big.status_code == 422
    assert live.client(None).post("/v1/preview", files={"photo": ("p.heic", b"x", "image/heic")}).status_code == 401
    default = officer.post("/v1/preview", files={"photo": ("p.tif", _rotated("TIFF"), "image/tiff")})
    with Image.open(io.BytesIO(default.content)) as img:
        assert img.size == (300, 400)  # never enlarged past the photo itself


def test_previews_count_against_the_search_rate(copy_home: Any, start_live_server: Any) -> None:
    server = start_live_server(copy_home("preview-rate"), search_rate_per_minute=2)
    officer = server.client("officer")
    photo = {"photo": ("p.tif", _rotated("TIFF"), "image/tiff")}
    assert [officer.post("/v1/preview", files=photo).status_code for _ in range(3)] == [200, 200, 429]


# -- keyword search ----------------------------------------------------------------------------

def test_words_find_records_without_their_accents(live: Any) -> None:
    officer = live.client("officer")
    found = officer.get("/v1/objects", params={"q": "turkiye", "limit": "20"})
    assert found.status_code == 200
    ids = [o["id"] for o in found.json()]
    assert ids and set(ids) == {"SMP-COIN-04", "SMP-COIN-10", "SMP-COIN-16", "SMP-COIN-22"}
    assert all(o["images"] for o in found.json())
    assert [o["id"] for o in officer.get("/v1/objects", params={"q": "starry nig"}).json()] == ["SMP-PAINT-01"]
    assert [o["id"] for o in officer.get("/v1/objects", params={"q": "SAMPLE-2026-0101"}).json()] == ["SMP-PAINT-01"]
    # combined with filters, and bounded
    filtered = officer.get("/v1/objects", params={"q": "coin", "country": "Türkiye", "limit": "2"}).json()
    assert len(filtered) == 2 and all(o["fields"]["country"] == "Türkiye" for o in filtered)
    assert officer.get("/v1/objects", params={"q": "coin", "limit": "501"}).status_code == 422
    assert officer.get("/v1/objects", params={"q": "coin", "status": "lost"}).status_code == 400


@pytest.mark.parametrize("q", ['"', "coin AND", "NEAR(coin", "title:coin", "*", "coin*", "(", "'", "-", "^x", "a" * 201])
def test_fts_syntax_in_the_words_never_makes_a_500(live: Any, q: str) -> None:
    r = live.client("officer").get("/v1/objects", params={"q": q})
    assert r.status_code in (200, 400, 422), (q, r.status_code, r.text)


def test_a_new_record_is_found_by_its_words_at_once(copy_home: Any, start_live_server: Any, catalogue_jpeg: bytes,
                                                   helpers: Any) -> None:
    server = start_live_server(copy_home("words-live"))
    curator = server.client("curator")
    record = '{"id": "NEW-1", "title": "Déesse à l\'épée", "maker": "Atelier Müller", "status": "stolen"}'
    assert curator.post("/v1/objects", data={"record": record}, files=helpers.upload(catalogue_jpeg)).status_code == 201
    officer = server.client("officer")
    assert [o["id"] for o in officer.get("/v1/objects", params={"q": "deesse epee"}).json()] == ["NEW-1"]
    assert curator.patch("/v1/objects/NEW-1", json={"fields": {"title": "Vase"}}).status_code == 200
    assert officer.get("/v1/objects", params={"q": "deesse"}).json() == []
    assert [o["id"] for o in officer.get("/v1/objects", params={"q": "muller"}).json()] == ["NEW-1"]


# -- meta ----------------------------------------------------------------------------------------

def test_meta_lists_the_features_and_the_search_timeout(copy_home: Any, start_live_server: Any, live: Any) -> None:
    meta = live.client(None).get("/v1/meta").json()
    assert {"preview", "keyword_search", "sheet", "short_id"} <= set(meta["features"])
    assert meta["search_timeout_s"] == 30
    slow = start_live_server(copy_home("meta-timeout"), search_timeout_s=75)
    assert slow.client(None).get("/v1/meta").json()["search_timeout_s"] == 75


def test_no_key_ever_reaches_the_sheet_or_preview_without_one(live: Any, painting_search: dict[str, Any]) -> None:
    anon = live.client(None)
    assert anon.get(painting_search["sheet_pdf_url"]).status_code == 401
    assert anon.get(painting_search["sheet_url"]).status_code == 401
    store = KeyStore(live.settings.paths.access)
    try:
        other = live.client(store.create("sheet-other-officer", "officer"))
    finally:
        store.close()
    assert other.get(painting_search["sheet_url"]).status_code == 404


def test_a_chinese_title_prints_in_an_english_sheet(tmp_path: Any) -> None:
    """The CJK font is loaded only when a glyph needs it (it costs seconds), and then the title prints."""
    from artefact.api.http.lang import Strings
    from artefact.api.http.sheet import Sheet, render_pdf
    from artefact.index.records import ObjectRecord

    photo, match = tmp_path / "q.jpg", tmp_path / "m.jpg"
    Image.new("RGB", (64, 48), (90, 120, 200)).save(photo)
    Image.new("RGB", (48, 64), (200, 120, 90)).save(match)
    record = {"search_id": "a" * 32, "short_id": "S-4F2K", "at_utc": "2026-11-30T19:00:00.000+00:00", "key_name": "o",
              "kind": "photo", "query": {"photos_sha256": ["b" * 64], "filenames": ["x.jpg"]}, "threshold": 0.5,
              "verdict": "close match", "model": "m",
              "results": [{"object_id": "CN-1", "score": 0.93, "verdict": "strong match", "probability": 0.97}]}
    obj = ObjectRecord("CN-1", {"title": "青花瓷瓶", "status": "looted", "case_reference": "CN-2026-7"}, {})
    pdf = PdfReader(io.BytesIO(render_pdf(Sheet(record, "strong", record["results"][0], obj, [photo], match),
                                          Strings("en"))))
    text = pdf.pages[0].extract_text()
    assert "青花瓷瓶" in text and "97% likely the same object" in text and "Looted" in text
    assert len(pdf.pages[0].images) == 2
