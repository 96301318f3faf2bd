"""The accepted photo formats (issue 10, finding 4) are the same list in the loader, the docs,
the API schema and the web page's file pickers."""

from __future__ import annotations

import re
from pathlib import Path

from artefact.api.http.app import create_app
from artefact.embed.images import ACCEPTED_FORMATS, SUPPORTED_FORMATS
from artefact.index.manifest import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[3]
# Pillow format id -> what a browser's file picker is told (HEIF files come as HEIC from phones).
MIME = {"JPEG": ["image/jpeg"], "PNG": ["image/png"], "WEBP": ["image/webp"], "TIFF": ["image/tiff"],
        "BMP": ["image/bmp"], "GIF": ["image/gif"], "HEIF": ["image/heic", "image/heif"], "AVIF": ["image/avif"]}


def test_the_loader_names_what_it_accepts():
    assert set(ACCEPTED_FORMATS) <= set(MIME)
    for fmt in ACCEPTED_FORMATS:
        assert fmt.replace("HEIF", "HEIC/HEIF").lower() in SUPPORTED_FORMATS.lower()


def test_docs_list_the_accepted_formats():
    for doc in ("README.md", "data/README.md"):
        text = (REPO / doc).read_text()
        assert SUPPORTED_FORMATS in text, doc


def test_the_api_schema_names_the_accepted_formats(settings_factory, tmp_path):
    schema = create_app(settings_factory(tmp_path / "home")).openapi()
    text = str(schema)
    assert text.count(SUPPORTED_FORMATS) >= 3  # search photos, create and add-photos, the 415 answer


def test_the_web_page_file_pickers_offer_exactly_the_accepted_formats():
    page = (REPO / "api" / "web" / "index.html").read_text()
    pickers = re.findall(r'<input[^>]*type="file"[^>]*>', page)
    multi = [p for p in pickers if "multiple" in p]
    assert multi, "no file picker found"
    for picker in multi:
        accept = re.search(r'accept="([^"]*)"', picker)
        assert accept, picker
        offered = set(accept.group(1).split(","))
        assert "image/*" not in offered, picker  # every format the browser knows would be offered
        mimes = {m for fmt in ACCEPTED_FORMATS for m in MIME[fmt]}
        assert {o for o in offered if o.startswith("image/")} == mimes, picker
        assert {o for o in offered if o.startswith(".")} <= IMAGE_SUFFIXES  # names bulk ingest takes too
