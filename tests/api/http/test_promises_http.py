"""README promises of the HTTP service that had no test: what a search record holds, query photos kept
only when configured and purged after the retention days, CORS off unless configured, the documented
limit variables and their defaults, text search refused clearly on an image-only model, and a model with
the same dimension but other weights refused."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from artefact.api.http.audit import AuditLog
from artefact.api.http.security import KeyStore
from artefact.api.settings import Settings
from artefact.index.library import Library


def test_a_search_record_holds_utc_time_key_name_photo_hash_filters_ids_and_scores(live, helpers, catalogue_jpeg) -> None:
    import hashlib

    store = KeyStore(live.settings.paths.access)
    try:
        officer = live.client(store.create("desk-ferri", "officer"))
    finally:
        store.close()
    r = officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"k": "4", "country": "Italy,Greece"})
    assert r.status_code == 200, r.text
    out = r.json()
    record = live.client("admin").get(f"/v1/searches/{out['search_id']}").json()
    at = datetime.fromisoformat(record["at_utc"])
    assert at.utcoffset() == timedelta(0), record["at_utc"]  # UTC, said so in the value
    assert abs(datetime.now(timezone.utc) - at) < timedelta(minutes=5)
    assert record["key_name"] == "desk-ferri"
    assert record["query"]["photos_sha256"] == [hashlib.sha256(catalogue_jpeg).hexdigest()]
    assert sorted(record["filters"]["country"]) == ["Greece", "Italy"], record["filters"]
    assert [(x["object_id"], x["score"]) for x in record["results"]] == \
        [(m["object"]["id"], m["score"]) for m in out["matches"]]
    assert len(record["results"]) == len(out["matches"]) > 0


def test_keep_photos_and_retention_come_from_the_documented_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ARTEFACT_AUDIT_KEEP_PHOTOS", "ARTEFACT_AUDIT_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    default = Settings(home=tmp_path)
    assert default.audit_keep_photos is False and default.audit_retention_days == 90
    monkeypatch.setenv("ARTEFACT_AUDIT_KEEP_PHOTOS", "1")
    monkeypatch.setenv("ARTEFACT_AUDIT_RETENTION_DAYS", "3")
    configured = Settings(home=tmp_path)
    assert configured.audit_keep_photos is True and configured.audit_retention_days == 3


def _record(log: AuditLog, data: bytes) -> dict:
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    return log.record_search("k", "photo", {"photos_sha256": [sha]}, {}, 5, 0.5, "no close match", [], "m", [(sha, data)])


def test_query_photos_are_kept_only_when_configured_and_purged_after_the_retention_days(tmp_path: Path) -> None:
    off = AuditLog(tmp_path / "off.sqlite", tmp_path / "off-photos", keep_photos=False, retention_days=3)
    try:
        assert _record(off, b"photo-0")["photos_kept"] == []
        assert not (tmp_path / "off-photos").exists() or not any((tmp_path / "off-photos").iterdir())
    finally:
        off.close()
    photos = tmp_path / "photos"
    log = AuditLog(tmp_path / "audit.sqlite", photos, keep_photos=True, retention_days=3)
    try:
        old, recent = _record(log, b"old photo"), _record(log, b"recent photo")
        assert (photos / old["photos_kept"][0]).read_bytes() == b"old photo"
        # The old search happened four days ago; the recent one two days ago: only the first is past 3 days.
        now = datetime.now(timezone.utc)
        for rec, age in ((old, 4), (recent, 2)):
            log.db.execute("UPDATE searches SET at = ? WHERE search_id = ?",
                           ((now - timedelta(days=age)).isoformat(timespec="milliseconds"), rec["search_id"]))
        assert log.purge_photos() == 1
        assert not (photos / old["photos_kept"][0]).exists()
        assert (photos / recent["photos_kept"][0]).read_bytes() == b"recent photo"
        assert log.get(old["search_id"])["photos_kept"] == []  # type: ignore[index]
        assert log.get(old["search_id"])["query"] == old["query"]  # type: ignore[index]  # the record itself stays
    finally:
        log.close()


def test_cors_is_off_by_default(live) -> None:
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    r = live.client(None).options("/v1/search/photo", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = live.client("officer").get("/v1/stats", headers={"Origin": "https://elsewhere.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert live.settings.cors_origins == []


def test_cors_on_when_configured_and_kept_photos_in_the_service(copy_home, start_live_server, helpers, catalogue_jpeg) -> None:
    origin = "https://museum.example"
    server = start_live_server(copy_home("cors"), cors_origins=[origin], audit_keep_photos=True)
    anon = server.client(None)
    r = anon.options("/v1/search/photo", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    r = anon.options("/v1/search/photo", headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("access-control-allow-origin") != "https://elsewhere.example"
    out = server.client("officer").post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"rerank": "0"}).json()
    kept = server.client("admin").get(f"/v1/searches/{out['search_id']}").json()["photos_kept"]
    assert len(kept) == 1 and (server.settings.paths.audit_photos / kept[0]).read_bytes() == catalogue_jpeg


def test_live_default_keeps_no_query_photo(live, helpers, catalogue_jpeg) -> None:
    r = live.client("officer").post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"rerank": "0"})
    assert r.status_code == 200
    folder = live.settings.paths.audit_photos
    assert not folder.exists() or not any(folder.iterdir())


# README: "Limits (environment): ARTEFACT_MAX_REQUEST_BYTES (60 MB), ARTEFACT_MAX_PHOTO_BYTES (25 MB),
# ARTEFACT_MAX_PHOTOS (8 per request), ARTEFACT_MAX_PIXELS (50 MP decoded)"; CORS off unless
# ARTEFACT_CORS_ORIGINS. test_service_limits.py shows each field is enforced; this shows each variable sets it.
DOCUMENTED_LIMITS = {
    "ARTEFACT_MAX_REQUEST_BYTES": ("max_request_bytes", 60 * 1024 * 1024, "1234567", 1234567),
    "ARTEFACT_MAX_PHOTO_BYTES": ("max_photo_bytes", 25 * 1024 * 1024, "2345678", 2345678),
    "ARTEFACT_MAX_PHOTOS": ("max_photos", 8, "3", 3),
    "ARTEFACT_MAX_PIXELS": ("max_pixels", 50_000_000, "4000000", 4_000_000),
    "ARTEFACT_CORS_ORIGINS": ("cors_origins", [], '["https://museum.example"]', ["https://museum.example"]),
}


def test_documented_limit_variables_and_their_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in DOCUMENTED_LIMITS:
        monkeypatch.delenv(name, raising=False)
    default = Settings(home=tmp_path)
    for name, (field, documented, _, _) in DOCUMENTED_LIMITS.items():
        assert getattr(default, field) == documented, name
    for name, (_, _, raw, _) in DOCUMENTED_LIMITS.items():
        monkeypatch.setenv(name, raw)
    configured = Settings(home=tmp_path)
    for name, (field, _, _, value) in DOCUMENTED_LIMITS.items():
        assert getattr(configured, field) == value, name


def test_text_search_on_an_image_only_model_is_a_clear_400(tmp_path: Path, offline_embedder, start_live_server) -> None:
    home = tmp_path / "home"
    with Library(home) as library:
        library.bind_model(offline_embedder.description)
    server = start_live_server(home, backend="efficientnet_lite0", model=None, pretrained=None)
    r = server.client("officer").post("/v1/search/text", json={"text": "a bronze horse"})
    assert r.status_code == 400, r.text
    assert "has no text tower" in r.json()["detail"]


def test_service_refuses_a_same_dimension_model_with_other_weights(copy_home, start_live_server, other_tiny_weights) -> None:
    server = start_live_server(copy_home("other-weights-http"), wait=False, pretrained=str(other_tiny_weights))
    anon = server.client(None)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = anon.get("/readyz")
        assert r.status_code == 503, r.text
        if r.json()["status"] == "failed":
            break
        time.sleep(0.2)
    detail = r.json()["detail"]
    assert r.json()["status"] == "failed" and "was built with open_clip:tiny-clip" in detail and "dim 32" in detail, detail
    assert server.client("officer").get("/v1/stats").status_code == 503
