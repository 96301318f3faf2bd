"""Hardening of the audit trail (issue 10, finding 9): every authenticated attempt with its outcome, a hash
chain that shows tampering, and owner-only files."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from artefact.api.http.audit import AuditLog
from artefact.api.http.security import KeyStore
from artefact.index.home import Home
from artefact.index.library import Library

MAX_REQUEST = 2_000_000


@pytest.fixture(scope="module")
def server(session_home_factory: Callable[[str], Any], start_live_server: Callable[..., Any]) -> Any:
    return start_live_server(session_home_factory("hardening-audit"), max_request_bytes=MAX_REQUEST)


def _trail(server: Any, key_name: str) -> list[dict[str, Any]]:
    r = server.client("admin").get("/v1/audit/trail")
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.text.splitlines()]
    return [row for row in rows if row["key_name"] == key_name]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_search_attempt_by_a_key_is_audited_with_its_outcome(server, helpers, catalogue_jpeg) -> None:
    store = KeyStore(server.settings.paths.access)
    try:
        token = store.create("auditee", "officer")
    finally:
        store.close()
    c = server.client(token)
    photo = helpers.upload(catalogue_jpeg)
    outcomes = [
        c.post("/v1/search/photo", files=photo, data={"status": "misplaced"}).status_code,  # unknown status
        c.post("/v1/search/photo", files=helpers.upload(*[catalogue_jpeg] * 9)).status_code,  # too many photos
        c.post("/v1/search/photo", files=helpers.upload(b"x" * (MAX_REQUEST + 1))).status_code,  # body limit
        c.post("/v1/search/photo", files=helpers.upload(b"%PDF-1.4 not a photo")).status_code,  # not an image
        c.post("/v1/search/photo", files=photo, data={"k": "0"}).status_code,  # invalid k
        c.post("/v1/search/text", json={"text": "a coin"}).status_code,
        c.post("/v1/search/photo", files=photo).status_code,
        c.get("/v1/audit/searches").status_code,  # role too low
    ]
    assert outcomes == [400, 413, 413, 415, 422, 200, 200, 403], outcomes
    rows = _trail(server, "auditee")
    requests = [r["detail"] for r in rows if r["event"] == "request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/v1/search/photo", 400), ("POST", "/v1/search/photo", 413), ("POST", "/v1/search/photo", 413),
        ("POST", "/v1/search/photo", 415), ("POST", "/v1/search/photo", 422), ("POST", "/v1/search/text", 200),
        ("POST", "/v1/search/photo", 200), ("GET", "/v1/audit/searches", 403),
    ]
    assert all(r["client"] == "127.0.0.1" for r in requests)
    searches = [r["detail"]["search_id"] for r in rows if r["event"] == "search"]
    assert len(searches) == 2
    for search_id in searches:  # each search record is sealed in the chain
        assert c.get(f"/v1/searches/{search_id}").status_code == 200


def test_a_revoked_key_is_audited_an_unknown_one_is_not(server) -> None:
    store = KeyStore(server.settings.paths.access)
    try:
        token = store.create("short-lived", "officer")
        store.revoke("short-lived")
    finally:
        store.close()
    assert server.client(token).get("/v1/stats").status_code == 401
    assert server.client("ak_never-issued").get("/v1/stats").status_code == 401
    assert [r["detail"]["status"] for r in _trail(server, "short-lived")] == [401]


def test_the_live_chain_verifies(server, helpers, catalogue_jpeg) -> None:
    server.client("officer").post("/v1/search/photo", files=helpers.upload(catalogue_jpeg))
    check = server.app.state.service.audit.verify()
    assert check.ok, check.problem
    assert check.rows > 0 and check.searches > 0 and len(check.head) == 64


# -- the chain, tampered with -------------------------------------------------------------------


def _log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.sqlite", tmp_path / "audit-photos", keep_photos=False, retention_days=90)


def _filled(tmp_path: Path) -> tuple[AuditLog, list[str]]:
    audit = _log(tmp_path)
    ids = []
    for n in range(3):
        audit.record_request("officer", "POST", "/v1/search/photo", 415)
        rec = audit.record_search("officer", "photo", {"photos_sha256": [f"{n:064d}"]}, {}, 10, 0.8, "close match",
                                  [{"object_id": f"OBJ-{n}", "score": 0.91 + n / 100}], "tiny")
        ids.append(rec["search_id"])
    audit.record_request("admin", "GET", "/v1/audit/searches", 200)
    return audit, ids


def _tamper(audit: AuditLog, sql: str, *params: Any) -> None:
    db = sqlite3.connect(audit.db.execute("PRAGMA database_list").fetchone()[2])
    with db:
        db.execute(sql, params)
    db.close()


def test_an_untouched_chain_verifies(tmp_path: Path) -> None:
    audit, _ = _filled(tmp_path)
    check = audit.verify()
    assert check.ok and check.rows == 7 and check.searches == 3, check


def test_a_changed_search_record_breaks_the_chain_at_its_row(tmp_path: Path) -> None:
    audit, ids = _filled(tmp_path)
    _tamper(audit, "UPDATE searches SET verdict = 'no close match' WHERE search_id = ?", ids[1])
    check = audit.verify()
    assert not check.ok and check.broken_seq == 4 and ids[1] in (check.problem or ""), check


def test_a_changed_request_row_breaks_the_chain(tmp_path: Path) -> None:
    audit, _ = _filled(tmp_path)
    _tamper(audit, "UPDATE trail SET detail = replace(detail, '415', '200') WHERE seq = 3")
    check = audit.verify()
    assert not check.ok and check.broken_seq == 3 and "changed" in (check.problem or ""), check


@pytest.mark.parametrize("seq", [1, 4, 7])
def test_a_removed_row_breaks_the_chain(tmp_path: Path, seq: int) -> None:
    audit, _ = _filled(tmp_path)
    _tamper(audit, "DELETE FROM trail WHERE seq = ?", seq)
    check = audit.verify()
    if seq == 7:  # the last row: only the head hash noted elsewhere shows it
        assert check.ok and check.rows == 6
    else:
        assert not check.ok and check.broken_seq == seq + 1, check


def test_a_rehashed_forgery_still_breaks_at_the_next_row(tmp_path: Path) -> None:
    """Rewriting a row and its own hash is not enough: the next row holds the old hash."""
    from artefact.api.http.audit import canonical, sha256_hex

    audit, _ = _filled(tmp_path)
    row = next(r for r in audit.trail() if r["seq"] == 3)
    row["detail"]["status"] = 200
    forged = {k: row[k] for k in ("seq", "at", "event", "key_name", "detail", "prev_hash")}
    _tamper(audit, "UPDATE trail SET detail = ?, row_hash = ? WHERE seq = 3",
            json.dumps(row["detail"]), sha256_hex(canonical(forged)))
    check = audit.verify()
    assert not check.ok and check.broken_seq == 4, check


def test_an_inserted_search_record_is_found(tmp_path: Path) -> None:
    audit, ids = _filled(tmp_path)
    _tamper(audit, "INSERT INTO searches SELECT 'forged-' || search_id, at, key_name, kind, query, filters, k, "
                   "threshold, verdict, results, model, photos_kept, NULL FROM searches WHERE search_id = ?", ids[0])
    check = audit.verify()
    assert not check.ok and "not in the chain" in (check.problem or ""), check


def test_purging_kept_photos_does_not_break_the_chain(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.sqlite", tmp_path / "audit-photos", keep_photos=True, retention_days=0)
    audit.record_search("officer", "photo", {}, {}, 10, 0.8, "close match", [], "tiny", photos=[("ab" * 32, b"jpeg")])
    assert audit.purge_photos() == 1
    assert audit.verify().ok


def test_searches_recorded_before_the_chain_join_it(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    db.execute(
        "CREATE TABLE searches (search_id TEXT PRIMARY KEY, at TEXT NOT NULL, key_name TEXT NOT NULL, kind TEXT NOT NULL, "
        "query TEXT NOT NULL, filters TEXT NOT NULL, k INTEGER NOT NULL, threshold REAL NOT NULL, verdict TEXT NOT NULL, "
        "results TEXT NOT NULL, model TEXT NOT NULL, photos_kept TEXT NOT NULL DEFAULT '[]')")
    db.execute("INSERT INTO searches VALUES ('abc', '2025-01-01T00:00:00.000+00:00', 'officer', 'text', '{}', '{}', 5, "
               "0.8, 'no close match', '[]', 'tiny', '[]')")
    db.commit()
    db.close()
    audit = _log(tmp_path)
    check = audit.verify()
    assert check.ok and check.searches == 1, check
    assert audit.get("abc") is not None


# -- file modes -------------------------------------------------------------------------------------


def test_the_service_files_are_owner_only(server) -> None:
    home = Home(server.settings.home)
    assert _mode(home.root) == 0o700
    for path in (home.audit, home.access, home.catalogue):
        assert _mode(path) == 0o600, path
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            assert _mode(wal) == 0o600, wal


def test_existing_files_are_tightened_on_open(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.root.mkdir(mode=0o755)
    Library(home).close()
    KeyStore(home.access).close()
    _log_at(home).close()
    for path in (home.catalogue, home.access, home.audit):
        path.chmod(0o644)
    home.root.chmod(0o755)
    Library(home).close()
    KeyStore(home.access).close()
    _log_at(home).close()
    assert _mode(home.root) == 0o700
    assert {p.name: _mode(p) for p in (home.catalogue, home.access, home.audit)} == {
        p.name: 0o600 for p in (home.catalogue, home.access, home.audit)}


def _log_at(home: Home) -> AuditLog:
    return AuditLog(home.audit, home.audit_photos, keep_photos=False, retention_days=90)
