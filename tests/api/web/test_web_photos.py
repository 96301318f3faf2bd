"""Big and HEIC photos (issue 15, point 5): phone photos are reduced before upload (upright,
1600 px long side) unless "full size" is ticked; formats the browser cannot draw get a preview
from the service when it offers one; the evidence picture loads only when its section opens.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from web_helpers import DESKTOP, PAINTING_QUERY, PHONE_390, QUERIES

HEIC_QUERY = QUERIES / "query-coin-SMP-COIN-18.heic"


def multipart_files(request: Any) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every file part of a multipart request the page sent."""
    boundary = re.search(r"boundary=(.+)", request.headers["content-type"]).group(1).encode()
    files = []
    for part in request.post_data_buffer.split(b"--" + boundary):
        head, _, body = part.partition(b"\r\n\r\n")
        name = re.search(rb'filename="([^"]*)"', head)
        if name:
            files.append((name.group(1).decode(), body.removesuffix(b"\r\n")))
    return files


def audit_record(base: str, key: str, search_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=base, trust_env=False, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.get(f"/v1/searches/{search_id}")
        r.raise_for_status()
        record: dict[str, Any] = r.json()
        return record


@pytest.fixture(scope="module")
def twelve_mp_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The painting as a 12 MP phone photo: stored on its side (4000 x 3000) with EXIF orientation 6."""
    upright = Image.open(PAINTING_QUERY).convert("RGB").resize((3000, 4000), Image.Resampling.BICUBIC)
    # Sensor noise, as in a real phone photo (an upscaled picture alone compresses far too well).
    noisy = np.asarray(upright, dtype=np.int16) + np.random.default_rng(0).normal(0, 6, (4000, 3000, 3)).astype(np.int16)
    upright = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path_factory.mktemp("phone") / "IMG_4032.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif)
    assert stored.size == (4000, 3000)
    return path


def test_a_12_mp_photo_is_sent_reduced_and_upright(
        visit: Any, server: str, web_home: tuple[Path, dict[str, str]], twelve_mp_photo: Path) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.sign_in(keys["officer"])
    v.add_photos(twelve_mp_photo)
    v.page.wait_for_function("document.querySelector('#photo-list').textContent.includes('sent as 1200 × 1600')")
    with v.page.expect_request("**/v1/search/photo") as sent:
        v.page.tap("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    answer = v.answer("search_id")
    [(name, data)] = multipart_files(sent.value)
    original = twelve_mp_photo.read_bytes()
    photo = Image.open(io.BytesIO(data))
    assert photo.format == "JPEG" and photo.size == (1200, 1600), photo.size  # upright: portrait, as seen
    assert photo.getexif().get(0x0112, 1) == 1, "orientation is applied, not left to the reader"
    assert len(data) < len(original) / 4, (len(data), len(original))
    assert name == "IMG_4032.jpg"
    # What the service received and recorded is exactly this reduced photo, and it still finds the painting.
    record = audit_record(server, keys["officer"], answer["search_id"])
    assert record["query"]["photos_sha256"] == [hashlib.sha256(data).hexdigest()]
    assert answer["matches"][0]["object"]["id"] == "SMP-PAINT-01"
    # The upright orientation, checked on the pixels: the reduced photo matches the upright original.
    upright = Image.open(twelve_mp_photo)
    upright = upright.transpose(Image.Transpose.ROTATE_270).resize((1200, 1600))
    small = lambda im: np.asarray(im.convert("L").resize((60, 80)), dtype=np.float32)  # noqa: E731
    diff = float(np.abs(small(photo) - small(upright)).mean())
    assert diff < 12, diff
    v.screenshot("phone-12mp-photo", full_page=False)


def test_full_size_sends_the_officers_own_file(
        visit: Any, server: str, web_home: tuple[Path, dict[str, str]], twelve_mp_photo: Path) -> None:
    _, keys = web_home
    v = visit(DESKTOP)
    v.sign_in(keys["officer"])
    v.page.check("#full-size-input")
    v.search_photo(twelve_mp_photo)
    answer = v.answer("search_id")
    record = audit_record(server, keys["officer"], answer["search_id"])
    assert record["query"]["photos_sha256"] == [hashlib.sha256(twelve_mp_photo.read_bytes()).hexdigest()]
    assert record["query"]["filenames"] == ["IMG_4032.jpg"]


def test_heic_without_a_service_preview_is_sent_as_it_is(
        visit: Any, server: str, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    meta = v.answer("record_fields")
    if "preview" in meta.get("features", []):
        pytest.skip("this service makes previews (see the next test)")
    v.add_photos(HEIC_QUERY)
    item = v.page.wait_for_selector("#photo-list li .no-preview")
    assert "No preview for this format" in item.inner_text()
    assert v.page.locator("#photo-list button[data-crop]").count() == 0, "nothing to crop on"
    assert not any("/v1/preview" in u for u in v.requests), "no upload for a preview the service does not make"
    v.page.click("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    answer = v.answer("search_id")
    record = audit_record(server, keys["officer"], answer["search_id"])
    assert record["query"]["photos_sha256"] == [hashlib.sha256(HEIC_QUERY.read_bytes()).hexdigest()]
    assert answer["matches"][0]["object"]["id"] == "SMP-COIN-18"


def test_heic_gets_the_services_preview_and_can_be_cropped(
        visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    """Against a service that lists "preview" in /v1/meta (simulated here until the service makes them)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.open(HEIC_QUERY).convert("RGB").save(buf, "JPEG", quality=90)
    preview_jpeg = buf.getvalue()
    _, keys = web_home
    v = visit(DESKTOP)
    asked: list[Any] = []

    def meta_with_preview(route: Any) -> None:
        response = route.fetch()
        meta = response.json()
        meta["features"] = sorted(set(meta.get("features", [])) | {"preview"})
        route.fulfill(response=response, json=meta)

    def preview(route: Any) -> None:
        asked.append(route.request)
        route.fulfill(status=200, body=preview_jpeg, headers={"content-type": "image/jpeg"})

    v.page.route("**/v1/meta", meta_with_preview)
    v.page.route("**/v1/preview", preview)
    v.page.reload()
    v.sign_in(keys["officer"])
    v.add_photos(HEIC_QUERY)
    v.wait_images("#photo-list img")
    assert v.page.locator("#photo-list img").evaluate("i => i.naturalWidth") > 100
    [request] = asked
    assert request.method == "POST" and request.headers["authorization"] == f"Bearer {keys['officer']}"
    assert b'name="max_side"' in request.post_data_buffer and b"1600" in request.post_data_buffer
    # The preview can be cropped, and the crop (a JPEG made from the preview) is what is sent.
    v.page.locator("#photo-list button[data-crop]").click()
    v.page.wait_for_selector("#crop-dialog[open]")
    v.page.click("#crop-apply")
    v.page.wait_for_selector("#crop-dialog[open]", state="detached")
    with v.page.expect_request("**/v1/search/photo") as sent:
        v.page.click("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    [(name, data)] = multipart_files(sent.value)
    assert name == "query-coin-SMP-COIN-18-crop.jpg" and data.startswith(b"\xff\xd8\xff")
    assert "SMP-COIN-18" in v.page.inner_text("#match-list > li:first-child, #nearest-list > li:first-child")


def test_the_evidence_picture_is_fetched_only_when_opened(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    v.wait_images("#match-list img")
    evidence = v.page.locator("#match-list details.evidence").first
    assert evidence.count() == 1
    assert not any("/evidence/" in u for u in v.requests)
    # The picture element is made by the toggle handler: wait for its request, not for images already there.
    with v.page.expect_request("**/evidence/**"):
        evidence.locator("summary").click()
    v.page.wait_for_selector("#match-list details.evidence img")
    v.wait_images("#match-list details.evidence img")
    assert sum("/evidence/" in u for u in v.requests) == 1
