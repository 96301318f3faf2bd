"""Limits and malformed input over real HTTP: each gets its documented 4xx, never a 500, and the server stays up.

Documented (README): too large 413, not an image 415, corrupt 422; request validation 422;
a bad filter value or catalogue error 400.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any, Iterator
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

LIMITS = dict(max_request_bytes=3_000_000, max_photo_bytes=1_000_000, max_photos=3, max_k=5, max_pixels=4_000_000)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_png(width: int, height: int) -> bytes:
    """A valid all-black 8-bit RGB PNG of any size, built without holding its pixels.

    Every raw byte is zero (filter 0, black pixels), so the deflate stream is one
    compressed 1 MiB block repeated (each ends with a full flush, which resets the
    compressor) and the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1.
    A 20,000 x 20,000 PNG is then 1.2 MB on the wire and 1.2 GB decoded.
    """
    n = height * (1 + 3 * width)
    block = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    repeats, rest = divmod(n, block)
    body = piece * repeats + c.compress(bytes(rest)) + c.flush()
    stream = b"\x78\xda" + body + struct.pack(">I", ((n % 65521) << 16) | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    """A 1x1 GIF whose header claims 65,535 x 65,535 pixels (4.3 gigapixels) in 40 bytes."""
    buf = io.BytesIO()
    Image.new("P", (1, 1)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = b"\xff\xff\xff\xff"  # logical screen width and height
    return bytes(data)


def noise_jpeg(side: int, quality: int = 98, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tight(session_home_factory, start_live_server) -> Any:
    """A server with small limits, so each one is cheap to reach."""
    return start_live_server(session_home_factory("tight"), **LIMITS)


def _detail(r: Any) -> str:
    body = r.json()
    assert "detail" in body, body
    return json.dumps(body["detail"])


def test_the_png_builder_makes_valid_images(monkeypatch: pytest.MonkeyPatch) -> None:
    with Image.open(io.BytesIO(blank_png(300, 200))) as img:
        img.load()
        assert img.size == (300, 200) and img.getextrema() == ((0, 0), (0, 0), (0, 0))
    big = blank_png(20_000, 20_000)
    assert len(big) < 2_000_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(io.BytesIO(big)) as img:  # header only: decoding it is what the server must refuse
        assert img.size == (20_000, 20_000)


# -- malformed photos on the default-limit server --------------------------------------------------


@pytest.mark.parametrize(
    "name,make,status,words",
    [
        ("truncated.jpg", lambda jpg: jpg[: len(jpg) // 2], 422, "truncated or corrupt"),
        ("empty.jpg", lambda jpg: b"", 422, "empty"),
        ("notes.jpg", lambda jpg: "a text file, not a photo\nÄÖÜ\n".encode() * 50, 415, "not a recognised image"),
        ("header-only.jpg", lambda jpg: jpg[:200], 422, ""),
        ("bomb.gif", lambda jpg: gif_bomb(), 413, "too many pixels"),
        ("huge.png", lambda jpg: blank_png(20_000, 20_000), 413, "pixels"),
    ],
)
def test_malformed_photos_get_their_documented_status(live, helpers, catalogue_jpeg, name, make, status, words) -> None:
    data = make(catalogue_jpeg)
    officer, curator = live.client("officer"), live.client("curator")
    r = officer.post("/v1/search/photo", files=[("photos", (name, data, "image/jpeg"))])
    assert r.status_code == status, r.text
    assert words in _detail(r)
    # a bad photo beside a good one still fails the whole request, and creates nothing
    record = json.dumps({"id": f"BAD-{name}", "title": "x"})
    r = curator.post("/v1/objects", data={"record": record}, files=helpers.upload(catalogue_jpeg) + [("photos", (name, data, "image/jpeg"))])
    assert r.status_code == status, r.text
    assert officer.get(f"/v1/objects/BAD-{quote(name)}").status_code == 404
    r = curator.post("/v1/objects/SMP-PAINT-01/photos", files=[("photos", (name, data, "image/jpeg"))])
    assert r.status_code == status, r.text
    assert len(officer.get("/v1/objects/SMP-PAINT-01").json()["images"]) == 2
    assert officer.get("/readyz").status_code == 200


def test_wrong_multipart_fields_and_bodies(live, helpers, catalogue_jpeg) -> None:
    officer = live.client("officer")
    r = officer.post("/v1/search/photo", files=[("photo", ("a.jpg", catalogue_jpeg, "image/jpeg"))])
    assert r.status_code == 422 and "photos" in _detail(r)
    r = officer.post("/v1/search/photo", data={"photos": "not a file"})
    assert r.status_code == 422 and "UploadFile" in _detail(r)
    assert officer.post("/v1/search/photo", json={"photos": []}).status_code == 422
    assert officer.post("/v1/search/photo").status_code == 422
    r = officer.post("/v1/search/photo", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"})
    # unparseable multipart: no part can be read, so the photos are missing, as with the wrong field above
    assert r.status_code == 422 and "photos" in _detail(r), r.text
    assert officer.post("/v1/search/text", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    curator = live.client("curator")
    r = curator.post("/v1/objects", files=helpers.upload(catalogue_jpeg))  # no record field
    assert r.status_code == 422 and "record" in _detail(r)
    for bad in ("not json", "[1, 2]"):  # not a JSON object at all: a malformed request
        r = curator.post("/v1/objects", data={"record": bad}, files=helpers.upload(catalogue_jpeg))
        assert r.status_code == 400, (bad, r.text)
    for bad in ('{"title": "no id"}', '{"id": "   "}'):  # an object that breaks the record rules (issue 10, finding 10)
        r = curator.post("/v1/objects", data={"record": bad}, files=helpers.upload(catalogue_jpeg))
        assert r.status_code == 422 and "id" in _detail(r), (bad, r.text)
    r = curator.post("/v1/objects", data={"record": json.dumps({"id": "NO-PHOTOS"})})
    assert r.status_code == 422


def test_huge_form_fields(live, helpers, catalogue_jpeg) -> None:
    officer, curator = live.client("officer"), live.client("curator")
    r = officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"country": "Italy," * 2000})
    assert r.status_code == 422 and "200" in _detail(r)  # max_length of a filter field
    r = curator.post("/v1/objects", files=helpers.upload(catalogue_jpeg),
                     data={"record": json.dumps({"id": "HUGE-1", "description": "x" * 200_000})})
    assert r.status_code == 422  # max_length of the record field
    r = officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"status": "x" * 2_000_000})
    assert r.status_code == 413, r.text  # over Starlette's 1 MB per-field cap
    assert officer.get("/v1/objects/HUGE-1").status_code == 404


@pytest.mark.parametrize(
    "form,status",
    [
        ({"status": "bogus"}, 400), ({"status": "stolen,lost"}, 400),
        ({"k": "0"}, 422), ({"k": "101"}, 422), ({"k": "ten"}, 422), ({"k": "-1"}, 422),
        ({"min_score": "1.5"}, 422), ({"min_score": "nan"}, 422), ({"min_score": "high"}, 422),
        ({"include_recovered": "perhaps"}, 422),
    ],
)
def test_bad_search_filter_values(live, helpers, catalogue_jpeg, form: dict[str, str], status: int) -> None:
    r = live.client("officer").post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data=form)
    assert r.status_code == status, r.text
    if status == 400:
        assert "unknown status" in _detail(r) and "stolen" in _detail(r)


def test_bad_values_on_the_other_endpoints(live) -> None:
    officer, curator, admin = live.client("officer"), live.client("curator"), live.client("admin")
    for body, status in (
        ({"text": ""}, 422), ({"text": "x" * 1001}, 422), ({"text": "x", "k": 0}, 422), ({"text": "x", "k": 101}, 422),
        ({"text": "x", "status": ["bogus"]}, 400), ({"text": "x", "status": "stolen"}, 422),
        ({"text": "x", "min_score": 2}, 422), ({}, 422),
    ):
        r = officer.post("/v1/search/text", json=body)
        assert r.status_code == status, (body, r.text)
    for params, status in (({"limit": 0}, 422), ({"limit": 501}, 422), ({"offset": -1}, 422), ({"status": "bogus"}, 400),
                           ({"country": "x" * 201}, 422)):
        assert officer.get("/v1/objects", params=params).status_code == status, params
    assert officer.get("/v1/images/not-a-number").status_code == 422
    assert officer.get("/v1/images/-5").status_code == 404
    assert admin.get("/v1/audit/changes", params={"limit": 0}).status_code == 422
    assert admin.get("/v1/audit/searches", params={"since": "x" * 41}).status_code == 422
    assert curator.put("/v1/objects/SMP-PAINT-01/status", json={}).status_code == 422
    assert curator.put("/v1/objects/SMP-PAINT-01/status", json={"status": "gone"}).status_code == 400
    assert curator.patch("/v1/objects/SMP-PAINT-01", json={"fields": "title"}).status_code == 422
    assert curator.patch("/v1/objects/SMP-PAINT-01", json={"fields": {"title": 5}}).status_code == 422
    assert officer.get("/v1/objects/SMP-PAINT-01").json()["fields"]["status"] == "stolen"


def test_unicode_in_records_round_trips(live, helpers) -> None:
    curator, officer, admin = live.client("curator"), live.client("officer"), live.client("admin")
    photo = helpers.distinct_photo(7)
    record = {"id": "ΑΡΧ-Ω-001 文物/№7", "title": "Ἄγαλμα — «bronze» 🐎", "country": "Türkiye",
              "description": "Zeile 1\nligne 2 — 第三行 \u200b end", "status": "looted", "provenance_note": "Ürün ✓"}
    r = curator.post("/v1/objects", data={"record": json.dumps(record, ensure_ascii=False)},
                     files=[("photos", ("фото-αγαλμα.jpg", photo, "image/jpeg"))])
    assert r.status_code == 201, r.text
    oid = record["id"]
    got = officer.get(f"/v1/objects/{quote(oid, safe='')}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["id"] == oid and body["fields"]["title"] == record["title"]
    assert body["fields"]["description"] == record["description"] and body["extra"] == {"provenance_note": "Ürün ✓"}
    listed = officer.get("/v1/objects", params={"country": "Türkiye", "limit": 500}).json()
    assert oid in {o["id"] for o in listed}
    out = officer.post("/v1/search/photo", files=[("photos", ("фото.jpg", photo, "image/jpeg"))], data={"country": "Türkiye"}).json()
    assert out["matches"][0]["object"]["id"] == oid
    record_out = admin.get(f"/v1/searches/{out['search_id']}").json()
    assert record_out["query"]["filenames"] == ["фото.jpg"]
    assert "фото.jpg" in admin.get("/v1/audit/searches").text  # exported as UTF-8, not \\u escapes
    r = curator.patch(f"/v1/objects/{quote(oid, safe='')}", json={"fields": {"maker": "Σ. Παπαδόπουλος"}})
    assert r.status_code == 200 and r.json()["fields"]["maker"] == "Σ. Παπαδόπουλος"
    assert curator.delete(f"/v1/objects/{quote(oid, safe='')}").json()["deleted"] == oid


# -- configured limits (tight server) -------------------------------------------------------------


def test_max_photo_bytes(tight, helpers) -> None:
    big = noise_jpeg(900)
    assert len(big) > LIMITS["max_photo_bytes"]
    officer, curator = tight.client("officer"), tight.client("curator")
    r = officer.post("/v1/search/photo", files=helpers.upload(big))
    assert r.status_code == 413 and "1000000" in _detail(r)
    r = curator.post("/v1/objects", data={"record": json.dumps({"id": "BIG-1"})}, files=helpers.upload(big))
    assert r.status_code == 413
    assert curator.post("/v1/objects/SMP-PAINT-01/photos", files=helpers.upload(big)).status_code == 413
    small = noise_jpeg(500)
    assert len(small) < LIMITS["max_photo_bytes"]
    assert officer.post("/v1/search/photo", files=helpers.upload(small)).status_code == 200


def test_max_photos(tight, helpers, catalogue_jpeg) -> None:
    officer, curator = tight.client("officer"), tight.client("curator")
    r = officer.post("/v1/search/photo", files=helpers.upload(*[catalogue_jpeg] * 4))
    assert r.status_code == 413 and "at most 3" in _detail(r)
    assert officer.post("/v1/search/photo", files=helpers.upload(*[catalogue_jpeg] * 3)).status_code == 200
    photos = [helpers.distinct_photo(s) for s in range(200, 204)]
    r = curator.post("/v1/objects", data={"record": json.dumps({"id": "MANY-1"})}, files=helpers.upload(*photos))
    assert r.status_code == 413
    assert curator.post("/v1/objects/SMP-PAINT-01/photos", files=helpers.upload(*photos)).status_code == 413
    assert officer.get("/v1/objects/MANY-1").status_code == 404


def test_max_k_caps_the_answer(tight, helpers, catalogue_jpeg) -> None:
    r = tight.client("officer").post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"k": "50"})
    assert r.status_code == 200 and len(r.json()["matches"]) == LIMITS["max_k"]
    r = tight.client("officer").post("/v1/search/text", json={"text": "coin", "k": 50})
    assert r.status_code == 200 and len(r.json()["matches"]) == LIMITS["max_k"]


def test_max_pixels(tight, helpers) -> None:
    officer = tight.client("officer")
    r = officer.post("/v1/search/photo", files=helpers.upload(blank_png(2001, 2000), mime="image/png"))
    assert r.status_code == 413 and "megapixels" in _detail(r)
    assert officer.post("/v1/search/photo", files=helpers.upload(blank_png(2000, 2000), mime="image/png")).status_code == 200


def test_max_request_bytes_declared_and_streamed(tight) -> None:
    officer = tight.client("officer")
    payload = b"\xff" * 3_500_000
    r = officer.post("/v1/search/photo", files=[("photos", ("a.jpg", payload, "image/jpeg"))])
    assert r.status_code == 413 and "3000000" in _detail(r)
    body = (b'--b\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + payload + b"\r\n--b--\r\n")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must count bytes as they arrive
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    r = officer.post("/v1/search/photo", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413, r.text
    assert "3000000" in _detail(r)
    assert officer.get("/readyz").status_code == 200
