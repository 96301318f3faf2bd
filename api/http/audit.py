"""Audit trail: every search (who, when, which photo hash, filters, results) as proof of due diligence,
and every authenticated request with its outcome, in one hash chain that `verify` checks.

Each row of the chain (`trail`) holds the SHA-256 of the row before it, and a search's row holds
the SHA-256 of its search record, so changing, removing or inserting any row or record breaks
the chain at that row. Removing rows from the end is only visible against a head hash noted
elsewhere (`verify` prints it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from artefact.embed.fileio import private_dir, private_file, utc_now

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the `prev_hash` of the first row
SCHEMA_VERSION = 3
# Short search references an officer reads over a radio ("S-4F2K"): no 0/O or 1/I to mistake.
SHORT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SHORT_PREFIX = "S-"
SHORT_MIN_LENGTH = 4  # 32^4 ~ 1M references; longer ones once a length gets crowded
_SHORT_ID = re.compile(r"S-?([" + SHORT_ALPHABET + r"]{4,12})")


def canonical(value: Any) -> bytes:
    """The one byte form that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """What `AuditLog.verify` found: rows checked, the head hash, and the first problem (None: intact)."""

    rows: int
    searches: int
    head: str
    problem: Optional[str] = None
    broken_seq: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class AuditLog:
    """Search records and the request trail in HOME/audit.sqlite; query photos optionally kept for a while."""

    def __init__(self, path: Path, photo_dir: Path, keep_photos: bool, retention_days: int) -> None:
        self._lock = threading.Lock()
        self.photo_dir = photo_dir
        self.keep_photos = keep_photos
        self.retention = timedelta(days=retention_days)
        self.db = sqlite3.connect(str(private_file(path)), isolation_level=None, check_same_thread=False, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Request rows commit without an fsync of their own (~8 ms each on a plain disk, under one lock);
        # a search record commits with one (FULL), which makes every row before it durable too.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock, self._transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version < 1:
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS searches (search_id TEXT PRIMARY KEY, at TEXT NOT NULL, "
                    "key_name TEXT NOT NULL, kind TEXT NOT NULL, query TEXT NOT NULL, filters TEXT NOT NULL, "
                    "k INTEGER NOT NULL, threshold REAL NOT NULL, verdict TEXT NOT NULL, results TEXT NOT NULL, "
                    "model TEXT NOT NULL, photos_kept TEXT NOT NULL DEFAULT '[]')"
                )
                self.db.execute("CREATE INDEX IF NOT EXISTS searches_at ON searches(at)")
            if version < 2:
                self.db.execute(
                    "CREATE TABLE trail (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, "
                    "key_name TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL)"
                )
                # Searches recorded before the chain existed join it now, oldest first.
                old = self.db.execute("SELECT search_id FROM searches ORDER BY at, search_id").fetchall()
                for (search_id,) in old:
                    self._chain_search(search_id)
                if old:
                    log.info("audit trail: %d earlier search records chained", len(old))
            if version < 3:
                # Records made before short references keep none (their sealed form is unchanged).
                self.db.execute("ALTER TABLE searches ADD COLUMN short_id TEXT")
                self.db.execute("CREATE UNIQUE INDEX searches_short_id ON searches(short_id)")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): appends from several processes stay in one chain."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def _durable(self) -> Iterator[None]:
        """Commits inside are fsynced (synchronous=FULL), then the connection goes back to NORMAL."""
        self.db.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self.db.close()

    # -- the chain ----------------------------------------------------------------------------
    def _append(self, event: str, key_name: str, detail: dict[str, Any], at: str | None = None) -> str:
        """Add one row to the chain (inside the caller's transaction); returns its hash."""
        last = self.db.execute("SELECT seq, row_hash FROM trail ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        row = {"seq": seq, "at": at or utc_now().isoformat(timespec="milliseconds"), "event": event,
               "key_name": key_name, "detail": detail, "prev_hash": prev}
        row_hash = sha256_hex(canonical(row))
        self.db.execute("INSERT INTO trail VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (seq, row["at"], event, key_name, json.dumps(detail, ensure_ascii=False), prev, row_hash))
        return row_hash

    def _record_hash(self, search_id: str) -> str | None:
        r = self.db.execute("SELECT * FROM searches WHERE search_id = ?", (search_id,)).fetchone()
        return sha256_hex(canonical(self._sealed(self._row(r)))) if r else None

    @staticmethod
    def _sealed(record: dict[str, Any]) -> dict[str, Any]:
        # Kept query photos are purged after the retention period: housekeeping, not the record.
        # A record from before short references has none, and is sealed as it was then.
        return {k: v for k, v in record.items() if k != "photos_kept" and not (k == "short_id" and v is None)}

    def _chain_search(self, search_id: str) -> None:
        r = self.db.execute("SELECT at, key_name FROM searches WHERE search_id = ?", (search_id,)).fetchone()
        self._append("search", r[1], {"search_id": search_id, "record_sha256": self._record_hash(search_id)}, at=r[0])

    def record_request(self, key_name: str, method: str, path: str, status: int, client: str = "") -> None:
        """One authenticated attempt and its outcome (status code)."""
        with self._lock, self._transaction():
            self._append("request", key_name, {"method": method, "path": path, "status": status, "client": client})

    def verify(self) -> ChainCheck:
        """Check every row's hash, its link to the row before, and every search record against its row."""
        with self._lock:
            rows = searches = 0
            prev, expected_seq = GENESIS, 1
            chained: set[str] = set()
            cur = self.db.execute("SELECT seq, at, event, key_name, detail, prev_hash, row_hash FROM trail ORDER BY seq")
            for seq, at, event, key_name, detail_text, prev_hash, row_hash in cur:
                rows += 1

                def broken(why: str, seq: int = seq) -> ChainCheck:
                    return ChainCheck(rows - 1, searches, prev, f"row {seq}: {why}", seq)

                try:
                    detail = json.loads(detail_text)
                except json.JSONDecodeError:
                    return broken("detail is not JSON")
                if seq != expected_seq:
                    return broken(f"expected row {expected_seq} here: rows are missing")
                if prev_hash != prev:
                    return broken("does not link to the row before it (a row was changed, removed or inserted)")
                row = {"seq": seq, "at": at, "event": event, "key_name": key_name, "detail": detail,
                       "prev_hash": prev_hash}
                if sha256_hex(canonical(row)) != row_hash:
                    return broken("its content does not match its hash (the row was changed)")
                if event == "search":
                    searches += 1
                    search_id = str(detail.get("search_id"))
                    actual = self._record_hash(search_id)
                    if actual is None:
                        return broken(f"search record {search_id} is missing")
                    if actual != detail.get("record_sha256"):
                        return broken(f"search record {search_id} was changed")
                    chained.add(search_id)
                prev, expected_seq = row_hash, seq + 1
            for (search_id,) in self.db.execute("SELECT search_id FROM searches ORDER BY at"):
                if search_id not in chained:
                    return ChainCheck(rows, searches, prev, f"search record {search_id} is not in the chain (inserted)")
        return ChainCheck(rows, searches, prev)

    def trail(self, since: str | None = None) -> Iterator[dict[str, Any]]:
        """The chain's rows from `since` (ISO-8601 UTC) on, oldest first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, at, event, key_name, detail, prev_hash, row_hash FROM trail WHERE at >= ? ORDER BY seq",
                (since or "",),
            ).fetchall()
        for seq, at, event, key_name, detail, prev_hash, row_hash in rows:
            yield {"seq": seq, "at": at, "event": event, "key_name": key_name, "detail": json.loads(detail),
                   "prev_hash": prev_hash, "row_hash": row_hash}

    # -- search records -------------------------------------------------------------------------
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
        """Store one search, chained, and return its record (what an officer may download)."""
        search_id = uuid.uuid4().hex
        at = utc_now().isoformat(timespec="milliseconds")
        kept: list[str] = []
        if self.keep_photos and photos:
            private_dir(self.photo_dir)
            for n, (sha, data) in enumerate(photos):
                path = self.photo_dir / f"{search_id}-{n}-{sha[:16]}"
                path.write_bytes(data)
                kept.append(path.name)
        with self._lock, self._durable(), self._transaction():
            self.db.execute(
                "INSERT INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    search_id, at, key_name, kind, json.dumps(query, ensure_ascii=False),
                    json.dumps(filters), k, threshold, verdict, json.dumps(results, ensure_ascii=False),
                    model, json.dumps(kept), self._new_short_id(),
                ),
            )
            self._chain_search(search_id)
        return self.get(search_id) or {}

    def _new_short_id(self) -> str:
        """A short reference no search of this installation holds (inside the caller's write transaction)."""
        length = SHORT_MIN_LENGTH
        while True:
            for _ in range(8):  # a crowded length fails a few draws in a row; then references grow
                candidate = SHORT_PREFIX + "".join(secrets.choice(SHORT_ALPHABET) for _ in range(length))
                if self.db.execute("SELECT 1 FROM searches WHERE short_id = ?", (candidate,)).fetchone() is None:
                    return candidate
            length += 1

    def _row(self, r: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
        return {
            "search_id": r[0], "short_id": r[12] if len(r) > 12 else None, "at_utc": r[1], "key_name": r[2], "kind": r[3],
            "query": json.loads(r[4]), "filters": json.loads(r[5]), "k": r[6], "threshold": r[7], "verdict": r[8],
            "results": json.loads(r[9]), "model": r[10], "photos_kept": json.loads(r[11]),
        }

    @staticmethod
    def short_form(reference: str) -> str | None:
        """`reference` as a stored short id ("s-4f2k", "S4F2K" -> "S-4F2K"), or None if it cannot be one."""
        m = _SHORT_ID.fullmatch(reference.strip().upper())
        return SHORT_PREFIX + m.group(1) if m else None

    def get(self, search_id: str) -> dict[str, Any] | None:
        """A search record by its long id or its short reference."""
        short = self.short_form(search_id)
        with self._lock:
            r = self.db.execute("SELECT * FROM searches WHERE search_id = ?", (search_id,)).fetchone()
            if r is None and short is not None:
                r = self.db.execute("SELECT * FROM searches WHERE short_id = ?", (short,)).fetchone()
        return self._row(r) if r else None

    def existing(self, search_ids: Iterable[str]) -> set[str]:
        """The long ids among `search_ids` that have a search record."""
        with self._lock:
            return {sid for sid in search_ids
                    if self.db.execute("SELECT 1 FROM searches WHERE search_id = ?", (sid,)).fetchone()}

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

    def evidence_of(self, object_id: str) -> list[tuple[str, int]]:
        """(search id, rank) of every search result that named `object_id` (their evidence images show it)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT s.search_id, CAST(r.key AS INTEGER) + 1 FROM searches s, json_each(s.results) r "
                "WHERE json_extract(r.value, '$.object_id') = ?", (object_id,),
            ).fetchall()
        return [(str(sid), int(rank)) for sid, rank in rows]

    def result_objects(self, search_ids: Iterable[str]) -> dict[tuple[str, int], str]:
        """(search id, rank) -> object id, for the searches named (the evidence images' subjects)."""
        out: dict[tuple[str, int], str] = {}
        with self._lock:
            for search_id in search_ids:
                row = self.db.execute("SELECT results FROM searches WHERE search_id = ?", (search_id,)).fetchone()
                for rank, result in enumerate(json.loads(row[0]) if row else [], start=1):
                    out[(search_id, rank)] = str(result.get("object_id", ""))
        return out

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
