"""What a home holds, for "this command wrote nothing" checks: every file's content hash and mtime,
and the catalogue by content. Importable from any test (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def home_snapshot(home: Path) -> dict[str, object]:
    """Files by hash and mtime, the catalogue by its dump (SQLite may fold its WAL into the main
    file when a connection closes: its bookkeeping, not a write of ours); lock files left out."""
    out: dict[str, object] = {
        str(p.relative_to(home)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.startswith("catalogue.sqlite") and not p.name.endswith(".lock")}
    db = sqlite3.connect(f"file:{home / 'catalogue.sqlite'}?mode=ro", uri=True)
    try:
        out["catalogue"] = "\n".join(db.iterdump())
    finally:
        db.close()
    return out
