"""`artefact audit verify` (issue 10, finding 9): the audit trail's hash chain checked from the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from artefact.api.cli import main
from artefact.api.http.audit import AuditLog
from artefact.index.home import Home


def _fill(home: Path) -> list[str]:
    paths = Home(home)
    home.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(paths.audit, paths.audit_photos, keep_photos=False, retention_days=90)
    ids = []
    try:
        for n in range(3):
            audit.record_request("officer", "POST", "/v1/search/photo", 422)
            ids.append(audit.record_search("officer", "photo", {}, {}, 10, 0.8, "close match",
                                           [{"object_id": f"OBJ-{n}", "score": 0.9}], "tiny")["search_id"])
    finally:
        audit.close()
    return ids


def _run(home: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--home", str(home), "audit", "verify", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_an_intact_trail_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(tmp_path / "home")
    rc, out, _ = _run(tmp_path / "home", capsys)
    assert rc == 0 and out.startswith("OK: 6 rows (3 search records)"), out
    rc, out, _ = _run(tmp_path / "home", capsys, "--json")
    report = json.loads(out)
    assert rc == 0 and report["ok"] is True and report["rows"] == 6 and len(report["head"]) == 64


def test_a_tampered_trail_exits_1_naming_the_first_broken_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _fill(tmp_path / "home")
    db = sqlite3.connect(Home(tmp_path / "home").audit)
    with db:  # a search record whose result was quietly changed
        db.execute("UPDATE searches SET results = '[]' WHERE search_id = ?", (ids[1],))
    db.close()
    rc, out, _ = _run(tmp_path / "home", capsys)
    assert rc == 1 and out.startswith("BROKEN: row 4:") and ids[1] in out, out
    rc, out, _ = _run(tmp_path / "home", capsys, "--json")
    assert rc == 1 and json.loads(out)["broken_row"] == 4


def test_a_home_without_an_audit_log_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(tmp_path, capsys)
    assert rc == 1 and "no audit log" in (out + err)
    assert not Home(tmp_path).audit.exists()  # verifying never creates one
