"""Every endpoint and every role boundary, over real HTTP against a uvicorn server on a loopback port."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

from artefact.api.http.security import KeyStore

# (method, path, least role, request kwargs that pass authentication but change nothing,
#  the exact status every allowed role gets)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("POST", "/v1/search/photo", "officer", {"data": {"k": "0"}}, 422),  # no photos, bad k
    ("POST", "/v1/search/text", "officer", {"json": {"text": ""}}, 422),
    ("GET", "/v1/searches/0000", "officer", {}, 404),
    ("GET", "/v1/searches/0000/evidence/1", "officer", {}, 404),
    ("GET", "/v1/searches/0000/sheet", "officer", {}, 404),
    ("GET", "/v1/searches/0000/sheet.pdf", "officer", {}, 404),
    ("POST", "/v1/preview", "officer", {"files": [("photo", ("a.heic", b"x", "image/heic"))]}, 415),
    ("GET", "/v1/objects", "officer", {"params": {"q": "starry"}}, 200),
    ("GET", "/v1/objects", "officer", {"params": {"limit": "1"}}, 200),
    ("GET", "/v1/objects/SMP-PAINT-01", "officer", {}, 200),
    ("GET", "/v1/images/999999", "officer", {}, 404),
    ("GET", "/v1/images/999999/thumbnail", "officer", {}, 404),
    ("GET", "/v1/stats", "officer", {}, 200),
    ("GET", "/v1/whoami", "officer", {}, 200),
    ("POST", "/v1/objects", "curator", {"data": {"record": "not json"}, "files": [("photos", ("a.jpg", b"x", "image/jpeg"))]}, 400),
    ("PATCH", "/v1/objects/NO-SUCH-OBJECT", "curator", {"json": {"fields": {"title": "x"}}}, 404),
    ("PUT", "/v1/objects/NO-SUCH-OBJECT/status", "curator", {"json": {"status": "recovered"}}, 404),
    ("POST", "/v1/objects/NO-SUCH-OBJECT/photos", "curator", {"files": [("photos", ("a.jpg", b"x", "image/jpeg"))]}, 415),  # the upload is judged first
    ("DELETE", "/v1/objects/NO-SUCH-OBJECT", "curator", {}, 404),
    ("GET", "/v1/audit/searches", "admin", {"params": {"since": "2999-01-01T00:00:00"}}, 200),
    ("GET", "/v1/audit/trail", "admin", {"params": {"since": "2999-01-01T00:00:00"}}, 200),
    ("GET", "/v1/audit/changes", "admin", {"params": {"limit": "1"}}, 200),
]
ROLE_ORDER = ("officer", "curator", "admin")


def _search(client: Any, helpers: Any, *photos: bytes, **form: Any) -> dict[str, Any]:
    r = client.post("/v1/search/photo", files=helpers.upload(*photos), data={k: str(v) for k, v in form.items()})
    assert r.status_code == 200, r.text
    return r.json()


# -- health, metrics, docs, web page -------------------------------------------------------


def test_health_ready_and_metrics_need_no_key(live) -> None:
    anon = live.client(None)
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readyz").json() == {"status": "ready"}
    live.client("officer").get("/v1/stats")  # at least one counted API request
    text = anon.get("/metrics").text
    assert re.search(r'^artefact_\w*requests\w*\{.*route="/v1/stats".*\} [1-9]', text, re.M), text[:2000]
    objects = re.search(r"^artefact_\w*objects\w* (\d+(\.\d+)?)$", text, re.M)
    assert objects and float(objects.group(1)) >= 27


def test_openapi_lists_every_endpoint_and_the_web_page_is_served(live) -> None:
    anon = live.client(None)
    spec = anon.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    for method, path, _, _, _ in ENDPOINTS:
        template = re.sub(r"/(NO-SUCH-OBJECT|SMP-PAINT-01)", "/{object_id}", path)
        template = re.sub(r"/images/999999", "/images/{image_id}", template).replace("/searches/0000", "/searches/{search_id}")
        template = template.replace("/evidence/1", "/evidence/{rank}")
        assert (method, template) in documented, (method, template)
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert "bearer" in json.dumps(spec["components"]["securitySchemes"]).lower()
    page = anon.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()
    # Every asset the page loads comes from this server (works offline, no CDN).
    assert not re.search(r'(src|href)="https?://', page.text), "the web page loads something from another host"
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert anon.get(asset).status_code == 200, f"{asset} referenced by the web page is not served"


# -- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,needed,kwargs,expected", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _, _ in ENDPOINTS])
def test_role_boundaries(live, method: str, path: str, needed: str, kwargs: dict[str, Any], expected: int) -> None:
    for caller in (None, "ak_not-a-real-key", "revoked"):
        r = live.client(caller).request(method, path, **kwargs)
        assert r.status_code == 401, (caller, r.status_code, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
    for role in ROLE_ORDER:
        r = live.client(role).request(method, path, **kwargs)
        if ROLE_ORDER.index(role) < ROLE_ORDER.index(needed):
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert needed in r.json()["detail"]
        else:
            assert r.status_code == expected, (role, r.status_code, r.text)


def test_whoami_names_the_key_and_its_role(live) -> None:
    for role in ROLE_ORDER:
        assert live.client(role).get("/v1/whoami").json() == {"name": role, "role": role}


def test_x_api_key_header_works_like_bearer(live) -> None:
    assert live.client("officer", header="x-api-key").get("/v1/stats").status_code == 200
    assert live.client("ak_wrong", header="x-api-key").get("/v1/stats").status_code == 401
    assert live.client("officer", header="x-api-key").get("/v1/audit/changes").status_code == 403


def test_a_key_created_or_revoked_while_running_takes_effect_at_once(live) -> None:
    store = KeyStore(live.settings.paths.access)
    try:
        token = store.create("late-officer", "officer")
        c = live.client(token)
        assert c.get("/v1/stats").status_code == 200
        store.revoke("late-officer")
        assert c.get("/v1/stats").status_code == 401
        assert any(k.name == "late-officer" and k.last_used_at for k in store.list())
    finally:
        store.close()


def test_open_mode_without_keys_is_anonymous_admin(copy_home, start_live_server, helpers, catalogue_jpeg) -> None:
    server = start_live_server(copy_home("open"), keys=False)
    anon = server.client(None)
    assert anon.get("/v1/audit/changes").status_code == 200
    out = _search(anon, helpers, catalogue_jpeg)
    assert anon.get(f"/v1/searches/{out['search_id']}").json()["key_name"] == "anonymous"


# -- search ----------------------------------------------------------------------------------


def test_photo_search_finds_the_catalogue_photo_and_records_the_search(live, helpers, catalogue_jpeg) -> None:
    officer = live.client("officer")
    out = _search(officer, helpers, catalogue_jpeg, k=5)
    assert 1 <= len(out["matches"]) <= 5
    top = out["matches"][0]
    assert top["object"]["id"] == "SMP-PAINT-01" and top["rank"] == 1
    assert top["score"] == pytest.approx(1.0, abs=1e-3) and top["close"] is True
    assert out["verdict"] == "close match"
    assert [m["rank"] for m in out["matches"]] == list(range(1, len(out["matches"]) + 1))
    assert [m["score"] for m in out["matches"]] == sorted((m["score"] for m in out["matches"]), reverse=True)
    assert {"decode", "embed", "search"} <= set(out["timings_ms"])
    assert top["object"]["fields"]["case_reference"]
    hit = top["hits"][0]
    assert hit["query"] == 0 and hit["image"]["image_id"] in {i["image_id"] for i in top["object"]["images"]}
    # the matched catalogue photo is served byte for byte, and its thumbnail is a small JPEG
    img = officer.get(hit["image"]["url"])
    assert img.status_code == 200
    assert img.content in {p.read_bytes() for p in (Path(__file__).parents[3] / "data/sample/images/SMP-PAINT-01").iterdir()}
    thumb = officer.get(hit["image"]["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as t:
        assert t.format == "JPEG" and max(t.size) <= 320

    record = officer.get(f"/v1/searches/{out['search_id']}").json()
    assert record["key_name"] == "officer" and record["kind"] == "photo" and record["verdict"] == "close match"
    assert record["results"][0]["object_id"] == "SMP-PAINT-01"
    import hashlib

    assert record["query"]["photos_sha256"] == [hashlib.sha256(catalogue_jpeg).hexdigest()]
    assert record["photos_kept"] == []  # query photos are not kept unless configured


def test_unset_k_and_rerank_take_the_service_defaults(live, helpers, catalogue_jpeg) -> None:
    out = _search(live.client("officer"), helpers, catalogue_jpeg)
    assert len(out["matches"]) == live.settings.http_results == 10
    assert out["matches"][0]["inliers"] is not None  # re-ranked: settings.rerank > 0 by default
    assert live.settings.rerank > 0
    record = live.client("officer").get(f"/v1/searches/{out['search_id']}").json()
    assert record["k"] == live.settings.http_results
    assert _search(live.client("officer"), helpers, catalogue_jpeg, rerank=0)["matches"][0]["inliers"] is None
    text = live.client("officer").post("/v1/search/text", json={"text": "a coin"}).json()
    assert len(text["matches"]) == live.settings.http_results


def test_evidence_image_of_a_verified_match(live, helpers, catalogue_jpeg) -> None:
    officer = live.client("officer")
    out = _search(officer, helpers, catalogue_jpeg)
    top = out["matches"][0]
    assert top["inliers"] and top["evidence_url"] == f"/v1/searches/{out['search_id']}/evidence/1"
    r = officer.get(top["evidence_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.format == "JPEG" and img.width > img.height  # query and catalogue photo side by side
    assert live.client("admin").get(top["evidence_url"]).status_code == 200
    assert live.client("curator").get(top["evidence_url"]).status_code == 404  # another key's search
    store = KeyStore(live.settings.paths.access)
    try:
        second_officer = live.client(store.create("evidence-second-officer", "officer"))
    finally:
        store.close()
    assert second_officer.get(top["evidence_url"]).status_code == 404  # same role, another officer
    assert officer.get(f"/v1/searches/{out['search_id']}/evidence/99").status_code == 404
    assert officer.get("/v1/searches/0000/evidence/1").status_code == 404


def test_meta_gives_record_fields_statuses_and_defaults_without_a_key(live) -> None:
    from artefact.api.http.schemas import FEATURES
    from artefact.index.records import FILTER_FIELDS, RECORD_FIELDS, STATUSES

    meta = live.client(None).get("/v1/meta")
    assert meta.status_code == 200, meta.text
    assert meta.json() == {"record_fields": list(RECORD_FIELDS), "statuses": list(STATUSES),
                           "filter_fields": list(FILTER_FIELDS), "results": live.settings.http_results,
                           "max_k": live.settings.max_k, "rerank": live.settings.rerank,
                           "features": list(FEATURES), "search_timeout_s": live.settings.search_timeout_s}


def test_search_records_are_private_to_their_key_except_for_admin(live, helpers, catalogue_jpeg) -> None:
    store = KeyStore(live.settings.paths.access)
    try:
        other = live.client(store.create("other-officer", "officer"))
    finally:
        store.close()
    sid = _search(live.client("officer"), helpers, catalogue_jpeg)["search_id"]
    assert other.get(f"/v1/searches/{sid}").status_code == 404
    assert live.client("curator").get(f"/v1/searches/{sid}").status_code == 404
    assert live.client("admin").get(f"/v1/searches/{sid}").json()["search_id"] == sid
    export = live.client("admin").get("/v1/audit/searches")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert sid in {r["search_id"] for r in rows}
    later = live.client("admin").get("/v1/audit/searches", params={"since": "2999-01-01T00:00:00"})
    assert later.status_code == 200 and later.text == ""


def test_several_photos_of_one_object_in_one_search(live, helpers) -> None:
    photos = sorted((Path(__file__).parents[3] / "data/sample/images/SMP-ARCH-01").iterdir())
    out = _search(live.client("officer"), helpers, *(p.read_bytes() for p in photos), k=3)
    top = out["matches"][0]
    assert top["object"]["id"] == "SMP-ARCH-01"
    assert {h["query"] for h in top["hits"]} == {0, 1}


def test_search_filters(live, helpers, catalogue_jpeg) -> None:
    officer = live.client("officer")
    for form, field, allowed in (
        ({"country": "Italy,Greece"}, "country", {"Italy", "Greece"}),
        ({"object_type": "coin"}, "object_type", {"coin"}),
        ({"status": "looted"}, "status", {"looted"}),
    ):
        out = _search(officer, helpers, catalogue_jpeg, k=50, **form)
        assert out["matches"], form
        assert {m["object"]["fields"][field] for m in out["matches"]} <= allowed, form
    default = _search(officer, helpers, catalogue_jpeg, k=50)
    assert all(m["object"]["fields"]["status"] != "recovered" for m in default["matches"])
    with_recovered = _search(officer, helpers, catalogue_jpeg, k=50, include_recovered="true")
    assert any(m["object"]["fields"]["status"] == "recovered" for m in with_recovered["matches"])
    assert len(with_recovered["matches"]) > len(default["matches"])
    # min_score sets the verdict's threshold
    strict = _search(officer, helpers, helpers.distinct_photo(1), min_score=1.0)
    assert strict["threshold"] == 1.0 and strict["verdict"] == "no close match"
    assert not any(m["close"] for m in strict["matches"])
    lax = _search(officer, helpers, helpers.distinct_photo(1), min_score=-1.0)
    assert lax["verdict"] == "close match" and all(m["close"] for m in lax["matches"])


def test_text_search(live) -> None:
    r = live.client("officer").post("/v1/search/text", json={"text": "bronze horse, green patina ☘", "k": 3,
                                                           "country": ["Italy"]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert 1 <= len(out["matches"]) <= 3
    assert {m["object"]["fields"]["country"] for m in out["matches"]} == {"Italy"}
    assert all(h["kind"] == "text" for m in out["matches"] for h in m["hits"])
    record = live.client("admin").get(f"/v1/searches/{out['search_id']}").json()
    assert record["query"] == {"text": "bronze horse, green patina ☘"} and record["kind"] == "text"


# -- objects ------------------------------------------------------------------------------------


def test_list_objects_pages_and_filters(live) -> None:
    officer = live.client("officer")
    seen: list[str] = []
    for offset in range(0, 100, 10):
        page = officer.get("/v1/objects", params={"limit": 10, "offset": offset}).json()
        seen += [o["id"] for o in page]
        if len(page) < 10:
            break
    sample = [i for i in seen if i.startswith("SMP-")]
    assert len(sample) == 27 and len(set(seen)) == len(seen) and seen == sorted(seen)
    coins = officer.get("/v1/objects", params={"object_type": "coin", "status": "stolen,looted", "limit": 500}).json()
    assert coins and all(o["fields"]["object_type"] == "coin" and o["fields"]["status"] in {"stolen", "looted"} for o in coins)
    assert all(o["images"] for o in coins)
    one = officer.get("/v1/objects/SMP-PAINT-01").json()
    assert one["id"] == "SMP-PAINT-01" and len(one["images"]) == 2
    assert officer.get("/v1/objects/NO-SUCH").status_code == 404


def test_object_lifecycle_over_http(live, helpers) -> None:
    store = KeyStore(live.settings.paths.access)
    try:  # a key name unlike any role, so the history shows whose key it was, not which role
        curator = live.client(store.create("registrar-bianchi", "curator"))
    finally:
        store.close()
    officer, admin = live.client("officer"), live.client("admin")
    photo_a, photo_b = helpers.distinct_photo(101), helpers.distinct_photo(102)
    record = {"id": "HTTP-LIFE-1", "title": "Bronze horse", "status": "stolen", "country": "Italy",
              "object_type": "figurine", "museum_number": "INV 7"}
    r = curator.post("/v1/objects", data={"record": json.dumps(record)}, files=helpers.upload(photo_a))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == "HTTP-LIFE-1" and created["fields"]["title"] == "Bronze horse"
    assert created["extra"] == {"museum_number": "INV 7"} and len(created["images"]) == 1
    assert curator.post("/v1/objects", data={"record": json.dumps(record)}, files=helpers.upload(photo_a)).status_code == 409

    assert _search(officer, helpers, photo_a)["matches"][0]["object"]["id"] == "HTTP-LIFE-1"
    assert officer.get(created["images"][0]["url"]).content == photo_a

    r = curator.post("/v1/objects/HTTP-LIFE-1/photos", files=helpers.upload(photo_b))
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    top = _search(officer, helpers, photo_b)["matches"][0]
    assert top["object"]["id"] == "HTTP-LIFE-1" and top["score"] == pytest.approx(1.0, abs=1e-3)

    r = curator.patch("/v1/objects/HTTP-LIFE-1", json={"fields": {"title": "Bronze horse (corrected)"}})
    assert r.status_code == 200 and r.json()["fields"]["title"] == "Bronze horse (corrected)"
    assert curator.patch("/v1/objects/HTTP-LIFE-1", json={"fields": {"status": "recovered"}}).status_code == 400
    assert curator.patch("/v1/objects/HTTP-LIFE-1", json={"fields": {"no_such_field": "x"}}).status_code == 400

    r = curator.put("/v1/objects/HTTP-LIFE-1/status", json={"status": "recovered"})
    assert r.status_code == 200 and r.json()["fields"]["status"] == "recovered"
    ids = [m["object"]["id"] for m in _search(officer, helpers, photo_a, k=50)["matches"]]
    assert "HTTP-LIFE-1" not in ids  # recovered objects are left out by default
    assert _search(officer, helpers, photo_a, include_recovered="true")["matches"][0]["object"]["id"] == "HTTP-LIFE-1"
    assert curator.put("/v1/objects/HTTP-LIFE-1/status", json={"status": "misplaced"}).status_code == 400

    r = curator.delete("/v1/objects/HTTP-LIFE-1")
    assert r.status_code == 200 and r.json() == {"deleted": "HTTP-LIFE-1", "vectors_removed": 2}
    assert officer.get("/v1/objects/HTTP-LIFE-1").status_code == 404
    assert officer.get(created["images"][0]["url"]).status_code == 404
    assert curator.delete("/v1/objects/HTTP-LIFE-1").status_code == 404
    ids = [m["object"]["id"] for m in _search(officer, helpers, photo_a, k=50, include_recovered="true")["matches"]]
    assert "HTTP-LIFE-1" not in ids

    history = admin.get("/v1/audit/changes", params={"object_id": "HTTP-LIFE-1"}).json()
    actions = [h["action"] for h in history]
    assert set(actions) == {"create", "add-photos", "update", "set-status", "remove"}, history
    assert [h["actor"] for h in history] == ["registrar-bianchi"] * len(history), history


def test_stats(live) -> None:
    s = live.client("officer").get("/v1/stats").json()
    assert s["objects"] >= 27 and s["vectors"] == s["images"] >= 33
    assert s["model"]["model_name"] == "tiny-clip" and s["threshold"] == pytest.approx(0.8)
    assert "home" not in s and "index_file" not in s  # no server paths leak to clients


def test_readyz_is_503_and_says_why_when_the_engine_cannot_load(copy_home, start_live_server) -> None:
    """A home built with the tiny model, served with another: /healthz is up, /readyz and the API 503 with the reason."""
    server = start_live_server(copy_home("mismatch"), wait=False, backend="efficientnet_lite0", model=None, pretrained=None)
    anon, officer = server.client(None), server.client("officer")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = anon.get("/readyz")
        assert r.status_code == 503, r.text
        if r.json()["status"] == "failed":
            break
        time.sleep(0.2)
    assert r.json()["status"] == "failed" and "tiny-clip" in r.json()["detail"], r.text
    assert anon.get("/healthz").status_code == 200
    r = officer.get("/v1/stats")
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and "tiny-clip" in r.json()["detail"]
