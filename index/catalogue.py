"""SQLite catalogue: objects, their photos and vectors; the source of truth the FAISS index is rebuilt from."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from artefact.index.errors import CatalogueError, ObjectNotFoundError, RecordError
from artefact.embed.fileio import private_file, utc_iso
from artefact.index.keywords import KEYWORD_COLUMNS, TOKENIZER, bm25_weights, fts_query
from artefact.index.records import (
    DEFAULT_STATUS,
    FILTER_FIELDS,
    RECORD_FIELDS,
    STATUSES,
    ImageRecord,
    ObjectRecord,
    validate_extra,
    validate_fields,
    validate_object_id,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4


def _migration_1() -> str:
    field_cols = ",\n".join(f"  {f} TEXT NOT NULL DEFAULT ''" for f in RECORD_FIELDS if f != "status")
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    return f"""
        CREATE TABLE objects (
          pk INTEGER PRIMARY KEY,
          object_id TEXT NOT NULL UNIQUE,
          status TEXT NOT NULL DEFAULT '{DEFAULT_STATUS}' CHECK (status IN ({statuses})),
        {field_cols},
          extra TEXT NOT NULL DEFAULT '{{}}',
          created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL
        );
        CREATE INDEX objects_status ON objects(status);
        CREATE INDEX objects_type ON objects(object_type);
        CREATE INDEX objects_country ON objects(country);
        CREATE INDEX objects_source ON objects(source);
        -- AUTOINCREMENT: an image id (= FAISS vector id) is never reused after a removal.
        CREATE TABLE images (
          image_id INTEGER PRIMARY KEY AUTOINCREMENT,
          object_pk INTEGER NOT NULL REFERENCES objects(pk) ON DELETE CASCADE,
          path TEXT NOT NULL,
          sha256 TEXT NOT NULL,
          size_bytes INTEGER NOT NULL,
          mtime_ns INTEGER NOT NULL DEFAULT 0,
          width INTEGER NOT NULL,
          height INTEGER NOT NULL,
          vector BLOB NOT NULL,
          added_at TEXT NOT NULL,
          UNIQUE (object_pk, path)
        );
        CREATE INDEX images_sha ON images(sha256);
        CREATE INDEX images_object ON images(object_pk);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE history (
          id INTEGER PRIMARY KEY,
          at TEXT NOT NULL,
          actor TEXT NOT NULL,
          action TEXT NOT NULL,
          object_id TEXT NOT NULL,
          detail TEXT NOT NULL DEFAULT '{{}}'
        );
        INSERT INTO meta VALUES ('generation', '0');
        """


def _migration_2() -> str:
    # Local features for geometric verification, one row per photo (deleted with it).
    return """
        CREATE TABLE features (
          image_id INTEGER PRIMARY KEY REFERENCES images(image_id) ON DELETE CASCADE,
          kind TEXT NOT NULL,
          n INTEGER NOT NULL,
          width INTEGER NOT NULL,
          height INTEGER NOT NULL,
          xy BLOB NOT NULL,
          descriptors BLOB NOT NULL
        );
        """


# Meta keys that are not catalogue content: the vector-set counter and a post's own bundle record.
BUNDLE_META = "bundle"
UNTRACKED_META = ("generation", BUNDLE_META)


def _migration_3() -> str:
    # Change log for small update bundles: the latest change number of every object, photo
    # (with its features) and meta key, kept by triggers so that no write path can forget it.
    # A photo's mtime is local file bookkeeping, not content, so touching it is no change.
    def track(table: str, event: str, kind: str, key: str, when: str = "") -> str:
        return (
            f"CREATE TRIGGER {table}_{event.split()[0].lower()}_tracked AFTER {event} ON {table} {when} BEGIN "
            f"INSERT INTO row_changes VALUES ('{kind}', {key}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM row_changes)) "
            "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq; END;"
        )

    untracked = ", ".join(f"'{k}'" for k in UNTRACKED_META)
    image_cols = "object_pk, path, sha256, size_bytes, width, height, vector"
    triggers = [
        track("objects", "INSERT", "object", "NEW.object_id"),
        track("objects", "UPDATE", "object", "NEW.object_id"),
        track("objects", "DELETE", "object", "OLD.object_id"),
        track("images", "INSERT", "image", "CAST(NEW.image_id AS TEXT)"),
        track("images", f"UPDATE OF {image_cols}", "image", "CAST(NEW.image_id AS TEXT)"),
        track("images", "DELETE", "image", "CAST(OLD.image_id AS TEXT)"),
        track("features", "INSERT", "image", "CAST(NEW.image_id AS TEXT)"),
        track("features", "UPDATE", "image", "CAST(NEW.image_id AS TEXT)"),
        track("features", "DELETE", "image", "CAST(OLD.image_id AS TEXT)"),
        track("meta", "INSERT", "meta", "NEW.key", f"WHEN NEW.key NOT IN ({untracked})"),
        track("meta", "UPDATE", "meta", "NEW.key", f"WHEN NEW.key NOT IN ({untracked})"),
        track("meta", "DELETE", "meta", "OLD.key", f"WHEN OLD.key NOT IN ({untracked})"),
    ]
    return (
        "CREATE TABLE row_changes (kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, "
        "PRIMARY KEY (kind, key)) WITHOUT ROWID;\n"
        "CREATE INDEX row_changes_seq ON row_changes(seq);\n" + "\n".join(triggers)
    )


def _migration_4() -> str:
    # Keyword search: an FTS5 index over the record's words, reading its text from `objects`
    # (external content, so the words are stored once) and kept in step by triggers, whatever
    # writes the rows (upserts, bundle deltas, restores). Existing rows are indexed now.
    cols = ", ".join(KEYWORD_COLUMNS)
    new = ", ".join(f"NEW.{c}" for c in KEYWORD_COLUMNS)
    old = ", ".join(f"OLD.{c}" for c in KEYWORD_COLUMNS)
    remove = f"INSERT INTO objects_fts (objects_fts, rowid, {cols}) VALUES ('delete', OLD.pk, {old});"
    add = f"INSERT INTO objects_fts (rowid, {cols}) VALUES (NEW.pk, {new});"
    return f"""
        CREATE VIRTUAL TABLE objects_fts USING fts5({cols}, content='objects', content_rowid='pk',
          tokenize='{TOKENIZER}', prefix='2 3');
        CREATE TRIGGER objects_fts_insert AFTER INSERT ON objects BEGIN {add} END;
        CREATE TRIGGER objects_fts_delete AFTER DELETE ON objects BEGIN {remove} END;
        CREATE TRIGGER objects_fts_update AFTER UPDATE OF pk, {cols} ON objects BEGIN {remove} {add} END;
        INSERT INTO objects_fts (objects_fts) VALUES ('rebuild');
        """


MIGRATIONS = {1: _migration_1, 2: _migration_2, 3: _migration_3, 4: _migration_4}


@dataclass(frozen=True)
class KnownImage:
    image_id: int
    sha256: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class SearchFilters:
    """Metadata filters applied inside the vector search (not by trimming top-k).

    Each field holds allowed values (OR within a field, AND across fields);
    recovered objects are left out unless asked for or named in `status`.
    """

    status: tuple[str, ...] = ()
    object_type: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    include_recovered: bool = False

    def where(self) -> tuple[str, list[str]]:
        clauses: list[str] = []
        params: list[str] = []
        for name in FILTER_FIELDS:
            values = getattr(self, name)
            if values:
                marks = ", ".join("?" * len(values))
                clauses.append(f"py_lower(o.{name}) IN ({marks})")
                params.extend(v.lower() for v in values)
        if not self.include_recovered and "recovered" not in {s.lower() for s in self.status}:
            clauses.append("o.status != 'recovered'")
        return (" AND ".join(clauses) or "1"), params

    @classmethod
    def parse(cls, values: Mapping[str, Iterable[str]], include_recovered: bool = False) -> "SearchFilters":
        """Filters from raw values per field name, each value one name or several joined by commas.

        Raises:
            CatalogueError: a field that is not a filter, or a status that does not exist.
        """
        unknown = [name for name in values if name not in FILTER_FIELDS]
        if unknown:
            raise CatalogueError(f"unknown filter {', '.join(unknown)}: use one of {', '.join(FILTER_FIELDS)}")
        split = {name: tuple(v.strip() for raw in values.get(name, ()) for v in raw.split(",") if v.strip())
                 for name in FILTER_FIELDS}
        bad = [s for s in split["status"] if s.lower() not in STATUSES]
        if bad:
            raise CatalogueError(f"unknown status {', '.join(bad)}: use one of {', '.join(STATUSES)}")
        return cls(**split, include_recovered=include_recovered)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {n: list(getattr(self, n)) for n in FILTER_FIELDS if getattr(self, n)}
        if self.include_recovered:
            d["include_recovered"] = True
        return d


_MIX, _MIX_MOD = 2654435761, 4294967291  # ids below 2**31 keep every product and sum inside int64


def ids_digest(ids: np.ndarray) -> tuple[int, ...]:
    """`Catalogue.image_ids_digest` of an id array (a vector store's ids)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return (0, 0, -1, -1, 0)
    return (len(ids), int(ids.sum()), int(ids.min()), int(ids.max()), int(((ids * _MIX) % _MIX_MOD).sum()))


class Catalogue:
    """The SQLite catalogue. One connection; write methods run inside `transaction()`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            private_file(self.path)  # records of stolen objects and their contacts: owner only
        except OSError as exc:
            raise CatalogueError(f"{self.path}: cannot open the catalogue ({exc.strerror or exc})") from exc
        try:
            # Shared by a service's worker threads; callers serialise access (see api.http.engine).
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            # SQLite's lower() folds ASCII only; filters must match "Ελλάδα" and "ÖSTERREICH" too.
            self.db.create_function("py_lower", 1, _py_lower, deterministic=True)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CatalogueError(f"{self.path}: not a usable catalogue database ({exc})") from exc
        self._in_tx = False

    def close(self) -> None:
        self.db.close()

    # -- schema -----------------------------------------------------------
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogueError(
                f"{self.path} has schema version {version}, newer than this program "
                f"understands ({SCHEMA_VERSION}); upgrade artefact-search"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            # One script, one transaction: a migration is applied whole or not at all.
            try:
                self.db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[v]()}\nPRAGMA user_version = {v};\nCOMMIT;")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            log.info("catalogue %s migrated to schema %d", self.path, v)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: all or nothing, even under kill -9 (WAL journal)."""
        if self._in_tx:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read view (WAL read transaction) across several queries."""
        if self._in_tx:
            yield
            return
        self.db.execute("BEGIN")
        self._in_tx = True
        try:
            yield
        finally:
            self._in_tx = False
            self.db.execute("COMMIT")

    # -- meta -------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Bumped by every change to the set of vectors; the FAISS file records the one it reflects."""
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> None:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def model(self) -> dict[str, Any] | None:
        raw = self.get_meta("model")
        return json.loads(raw) if raw else None

    def set_model(self, description: dict[str, Any]) -> None:
        self.set_meta("model", json.dumps(description, sort_keys=True))

    def log_change(self, actor: str, action: str, object_id: str, detail: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "INSERT INTO history (at, actor, action, object_id, detail) VALUES (?, ?, ?, ?, ?)",
            (utc_iso(), actor, action, object_id, json.dumps(detail or {}, ensure_ascii=False)),
        )

    def history(self, object_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT at, actor, action, object_id, detail FROM history"
        params: list[Any] = []
        if object_id is not None:
            sql += " WHERE object_id = ?"
            params.append(object_id)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- objects ----------------------------------------------------------
    def upsert_object(self, record: ObjectRecord) -> tuple[int, str]:
        """Insert or update an object; returns (pk, 'created' | 'updated' | 'unchanged').

        Raises:
            RecordError: an id or value breaking the rules of index/records.py, whoever the caller.
        """
        if validate_object_id(record.object_id) != record.object_id:
            raise RecordError(f"the id {record.object_id[:40]!r} has spaces around it")
        fields = validate_fields({f: record.fields.get(f) for f in RECORD_FIELDS})
        validate_extra(record.extra)
        status = (fields.get("status") or DEFAULT_STATUS).lower()
        if status not in STATUSES:
            raise CatalogueError(
                f"object {record.object_id}: status {status!r} is not one of {', '.join(STATUSES)}"
            )
        values = {f: fields.get(f, "") for f in RECORD_FIELDS}
        values["status"] = status
        extra = json.dumps(record.extra, sort_keys=True, ensure_ascii=False)
        row = self.db.execute("SELECT * FROM objects WHERE object_id = ?", (record.object_id,)).fetchone()
        now = utc_iso()
        if row is None:
            cols = ", ".join(RECORD_FIELDS)
            marks = ", ".join("?" * len(RECORD_FIELDS))
            cur = self.db.execute(
                f"INSERT INTO objects (object_id, {cols}, extra, created_at, updated_at) "
                f"VALUES (?, {marks}, ?, ?, ?)",
                (record.object_id, *[values[f] for f in RECORD_FIELDS], extra, now, now),
            )
            return int(cur.lastrowid or 0), "created"
        if all(row[f] == values[f] for f in RECORD_FIELDS) and row["extra"] == extra:
            return int(row["pk"]), "unchanged"
        sets = ", ".join(f"{f} = ?" for f in RECORD_FIELDS)
        self.db.execute(
            f"UPDATE objects SET {sets}, extra = ?, updated_at = ? WHERE pk = ?",
            (*[values[f] for f in RECORD_FIELDS], extra, now, row["pk"]),
        )
        return int(row["pk"]), "updated"

    def _object_row(self, object_id: str) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM objects WHERE object_id = ?", (object_id,)).fetchone()
        if row is None:
            raise ObjectNotFoundError(f"no object with id {object_id!r} in the catalogue")
        return row

    @staticmethod
    def _record(row: sqlite3.Row) -> ObjectRecord:
        return ObjectRecord(
            object_id=row["object_id"],
            fields={f: row[f] for f in RECORD_FIELDS},
            extra=json.loads(row["extra"] or "{}"),
        )

    def get_object(self, object_id: str) -> ObjectRecord:
        return self._record(self._object_row(object_id))

    def object_pk(self, object_id: str) -> int:
        """The row key of an object (raises ObjectNotFoundError)."""
        return int(self._object_row(object_id)["pk"])

    def objects_by_pk(self, pks: Sequence[int]) -> dict[int, ObjectRecord]:
        out: dict[int, ObjectRecord] = {}
        for chunk in _chunks(list(pks), 500):
            marks = ", ".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM objects WHERE pk IN ({marks})", chunk):
                out[int(row["pk"])] = self._record(row)
        return out

    def list_objects(
        self, filters: SearchFilters | None = None, limit: int = 50, offset: int = 0
    ) -> list[ObjectRecord]:
        where, params = (filters or SearchFilters(include_recovered=True)).where()
        rows = self.db.execute(
            f"SELECT * FROM objects o WHERE {where} ORDER BY o.object_id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [self._record(r) for r in rows]

    def find_objects(self, words: str, filters: SearchFilters | None = None, limit: int = 20,
                     offset: int = 0) -> list[ObjectRecord]:
        """Records holding every word (accent- and case-insensitive, each word a prefix), best first (bm25).

        Raises:
            CatalogueError: no usable word in `words` (see artefact.index.keywords.fts_query).
        """
        where, params = (filters or SearchFilters(include_recovered=True)).where()
        rows = self.db.execute(
            f"SELECT o.* FROM objects_fts f JOIN objects o ON o.pk = f.rowid "
            f"WHERE objects_fts MATCH ? AND {where} ORDER BY bm25(objects_fts, {bm25_weights()}), o.object_id LIMIT ? OFFSET ?",
            (fts_query(words), *params, limit, offset),
        ).fetchall()
        return [self._record(r) for r in rows]

    def set_status(self, object_id: str, status: str) -> str:
        """Change an object's status; returns the previous one."""
        status = status.strip().lower()
        if status not in STATUSES:
            raise CatalogueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        row = self._object_row(object_id)
        self.db.execute(
            "UPDATE objects SET status = ?, updated_at = ? WHERE pk = ?", (status, utc_iso(), row["pk"])
        )
        return str(row["status"])

    def remove_object(self, object_id: str) -> list[int]:
        """Delete an object and its photos; returns the image ids whose vectors must go too."""
        row = self._object_row(object_id)
        ids = [r[0] for r in self.db.execute("SELECT image_id FROM images WHERE object_pk = ?", (row["pk"],))]
        self.db.execute("DELETE FROM objects WHERE pk = ?", (row["pk"],))
        if ids:
            self.bump_generation()
        return ids

    # -- images -----------------------------------------------------------
    def known_images(self, object_pk: int) -> dict[str, KnownImage]:
        rows = self.db.execute(
            "SELECT path, image_id, sha256, size_bytes, mtime_ns FROM images WHERE object_pk = ?",
            (object_pk,),
        )
        return {r[0]: KnownImage(r[1], r[2], r[3], r[4]) for r in rows}

    def add_image(
        self,
        object_pk: int,
        path: str,
        sha256: str,
        size_bytes: int,
        mtime_ns: int,
        width: int,
        height: int,
        vector: np.ndarray,
    ) -> int:
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        cur = self.db.execute(
            "INSERT INTO images (object_pk, path, sha256, size_bytes, mtime_ns, width, height, vector, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (object_pk, path, sha256, size_bytes, mtime_ns, width, height, blob, utc_iso()),
        )
        self.bump_generation()
        return int(cur.lastrowid or 0)

    def set_features(self, image_id: int, row: tuple[str, int, int, int, bytes, bytes]) -> None:
        """Store local features (kind, n, width, height, xy, descriptors) of a photo."""
        self.db.execute("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?, ?)", (image_id, *row))

    def features(self, image_ids: Sequence[int]) -> dict[int, tuple[str, int, int, int, bytes, bytes]]:
        out = {}
        for chunk in _chunks([int(i) for i in image_ids], 500):
            marks = ", ".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT * FROM features WHERE image_id IN ({marks})", chunk):
                out[int(r[0])] = (r[1], r[2], r[3], r[4], r[5], r[6])
        return out

    def images_without_features(self, limit: int = 1000) -> list[tuple[int, str]]:
        rows = self.db.execute(
            "SELECT i.image_id, i.path FROM images i LEFT JOIN features f ON f.image_id = i.image_id "
            "WHERE f.image_id IS NULL ORDER BY i.image_id LIMIT ?", (limit,)
        )
        return [(int(r[0]), r[1]) for r in rows]

    def remove_image(self, image_id: int) -> None:
        self.db.execute("DELETE FROM images WHERE image_id = ?", (image_id,))
        self.bump_generation()

    def touch_image(self, image_id: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE images SET mtime_ns = ? WHERE image_id = ?", (mtime_ns, image_id))

    def image_files(self) -> dict[int, str]:
        """Every photo's id and file path (the orphan sweep keeps these files)."""
        return {int(r[0]): r[1] for r in self.db.execute("SELECT image_id, path FROM images")}

    def images_with_sha(self, sha256: str) -> list[tuple[int, str]]:
        rows = self.db.execute(
            "SELECT i.image_id, o.object_id FROM images i JOIN objects o ON o.pk = i.object_pk "
            "WHERE i.sha256 = ?",
            (sha256,),
        )
        return [(int(r[0]), r[1]) for r in rows]

    def object_images(self, object_id: str) -> list[ImageRecord]:
        rows = self.db.execute(
            "SELECT i.image_id, o.object_id, i.path, i.sha256, i.size_bytes, i.width, i.height "
            "FROM images i JOIN objects o ON o.pk = i.object_pk WHERE o.object_id = ? ORDER BY i.image_id",
            (object_id,),
        )
        return [ImageRecord(*r) for r in rows]

    def images_by_id(self, image_ids: Sequence[int]) -> dict[int, tuple[int, ImageRecord]]:
        """image id -> (object pk, image record)."""
        out: dict[int, tuple[int, ImageRecord]] = {}
        for chunk in _chunks([int(i) for i in image_ids], 500):
            marks = ", ".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT i.object_pk, i.image_id, o.object_id, i.path, i.sha256, i.size_bytes, i.width, i.height "
                f"FROM images i JOIN objects o ON o.pk = i.object_pk WHERE i.image_id IN ({marks})",
                chunk,
            )
            for r in rows:
                out[int(r[1])] = (int(r[0]), ImageRecord(*r[1:]))
        return out

    def image_ids(self, filters: SearchFilters | None = None, negate: bool = False) -> np.ndarray:
        """Ids of images whose object passes the filters (or fails them, with negate)."""
        where, params = (filters or SearchFilters(include_recovered=True)).where()
        if negate:
            where = f"NOT ({where})"
        rows = self.db.execute(
            f"SELECT i.image_id FROM images i JOIN objects o ON o.pk = i.object_pk WHERE {where}", params
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def image_ids_digest(self) -> tuple[int, ...]:
        """Count, sum, min, max and a mixed sum of all image ids: equal digests mean equal id sets in
        practice, computed inside SQLite (a million ids in well under a second, where fetching them
        into Python takes seconds). `ids_digest` computes the same for an array."""
        row = self.db.execute(
            f"SELECT count(*), coalesce(sum(image_id), 0), coalesce(min(image_id), -1), coalesce(max(image_id), -1), "
            f"coalesce(sum((image_id * {_MIX}) % {_MIX_MOD}), 0) FROM images"
        ).fetchone()
        return tuple(int(v) for v in row)

    def recovered_image_ids(self) -> np.ndarray:
        """Photos of recovered objects (uses the status index; usually a short list)."""
        rows = self.db.execute(
            "SELECT i.image_id FROM objects o JOIN images i ON i.object_pk = o.pk WHERE o.status = 'recovered'"
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, image_ids: Sequence[int] | None = None, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, float32 matrix) in chunks, for all images or the ones named."""
        if image_ids is None:
            last = -1
            while True:
                rows = self.db.execute(
                    "SELECT image_id, vector FROM images WHERE image_id > ? ORDER BY image_id LIMIT ?",
                    (last, chunk),
                ).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield _unpack(rows)
        else:
            for part in _chunks([int(i) for i in image_ids], min(chunk, 500)):
                marks = ", ".join("?" * len(part))
                rows = self.db.execute(
                    f"SELECT image_id, vector FROM images WHERE image_id IN ({marks}) ORDER BY image_id", part
                ).fetchall()
                if rows:
                    yield _unpack(rows)

    def counts(self) -> dict[str, Any]:
        objects = self.db.execute("SELECT count(*) FROM objects").fetchone()[0]
        images = self.db.execute("SELECT count(*) FROM images").fetchone()[0]
        by_status = {
            r[0]: r[1] for r in self.db.execute("SELECT status, count(*) FROM objects GROUP BY status")
        }
        with_features = self.db.execute("SELECT count(*) FROM features").fetchone()[0]
        no_images = self.db.execute(
            "SELECT count(*) FROM objects o WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.object_pk = o.pk)"
        ).fetchone()[0]
        return {"objects": objects, "images": images, "by_status": by_status, "objects_without_images": no_images,
                "images_with_features": with_features}

    def integrity_problems(self) -> list[str]:
        problems = [r[0] for r in self.db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key problem in {r[0]}" for r in self.db.execute("PRAGMA foreign_key_check")]
        return problems


def _py_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _unpack(rows: list[sqlite3.Row]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mat = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    return ids, mat


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
