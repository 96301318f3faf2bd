"""Audit trail: every search (who, when, which photo hash, filters, results) as proof of due diligence."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

from artefact.embed.fileio import utc_now

log = logging.getLogger(__name__)


class AuditLog:
    """Search records in HOME/audit.sqlite; query photos optionally kept for a retention period."""

    def __init__(self, path: Path, photo_dir: Path, keep_photos: bool, retention_days: int) -> None:
        self._lock = threading.Lock()
        self.photo_dir = photo_dir
        self.keep_photos = keep_photos
        self.retention = timedelta(days=retention_days)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS searches (search_id TEXT PRIMARY KEY, at TEXT NOT NULL, "
            "key_name TEXT NOT NULL, kind TEXT NOT NULL, query TEXT NOT NULL, filters TEXT NOT NULL, "
            "k INTEGER NOT NULL, threshold REAL NOT NULL, verdict TEXT NOT NULL, results TEXT NOT NULL, "
            "model TEXT NOT NULL, photos_kept TEXT NOT NULL DEFAULT '[]')"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS searches_at ON searches(at)")

    def close(self) -> None:
        self.db.close()

    def record_search(
        self,
        key_name: str,
        kind: str,
        query: dict[str, Any],
        filters: dict[str, Any],
        k: int,
        threshold: float,
        verdict: str,
        results: list[dict[str, Any]],
        model: str,
        photos: list[tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        """Store one search and return its record (what an officer may download)."""
        search_id = uuid.uuid4().hex
        at = utc_now().isoformat(timespec="milliseconds")
        kept: list[str] = []
        if self.keep_photos and photos:
            self.photo_dir.mkdir(parents=True, exist_ok=True)
            for n, (sha, data) in enumerate(photos):
                path = self.photo_dir / f"{search_id}-{n}-{sha[:16]}"
                path.write_bytes(data)
                kept.append(path.name)
        with self._lock:
            self.db.execute(
                "INSERT INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    search_id, at, key_name, kind, json.dumps(query, ensure_ascii=False),
                    json.dumps(filters), k, threshold, verdict, json.dumps(results, ensure_ascii=False),
                    model, json.dumps(kept),
                ),
            )
        return self.get(search_id) or {}

    def _row(self, r: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
        return {
            "search_id": r[0], "at_utc": r[1], "key_name": r[2], "kind": r[3], "query": json.loads(r[4]),
            "filters": json.loads(r[5]), "k": r[6], "threshold": r[7], "verdict": r[8],
            "results": json.loads(r[9]), "model": r[10], "photos_kept": json.loads(r[11]),
        }

    def get(self, search_id: str) -> dict[str, Any] | None:
        with self._lock:
            r = self.db.execute("SELECT * FROM searches WHERE search_id = ?", (search_id,)).fetchone()
        return self._row(r) if r else None

    def export(self, since: str | None = None) -> Iterator[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM searches WHERE at >= ? ORDER BY at", (since or "",)
            ).fetchall()
        for r in rows:
            yield self._row(r)

    def export_jsonl(self, since: str | None = None) -> str:
        """The search log from `since` on, one JSON record per line (UTF-8, not escaped)."""
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.export(since))

    def purge_photos(self) -> int:
        """Delete kept query photos older than the retention period; returns how many."""
        if not self.photo_dir.is_dir():
            return 0
        cutoff = (utc_now() - self.retention).isoformat()
        with self._lock:
            rows = self.db.execute(
                "SELECT search_id, photos_kept FROM searches WHERE at < ? AND photos_kept != '[]'", (cutoff,)
            ).fetchall()
            removed = 0
            for search_id, kept in rows:
                for name in json.loads(kept):
                    path = self.photo_dir / name
                    if path.is_file():
                        path.unlink()
                        removed += 1
                self.db.execute("UPDATE searches SET photos_kept = '[]' WHERE search_id = ?", (search_id,))
        return removed
