"""Catalogue rows for bundles: a consistent snapshot, the catalogue's state, and deltas made and applied by change number."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Mapping

from artefact.index.bundle.errors import BundleIntegrityError
from artefact.index.catalogue import BUNDLE_META, UNTRACKED_META
TABLES = ("objects", "images", "features", "meta", "history", "row_changes")


def snapshot(source: sqlite3.Connection, target: Path) -> None:
    """Copy a live catalogue with SQLite's backup API in one step: a consistent state even while a service writes."""
    dst = sqlite3.connect(str(target))
    try:
        source.backup(dst)  # pages=-1: all pages under one read transaction of the source
    finally:
        dst.close()


def connect(path: Path) -> sqlite3.Connection:
    """A plain connection (autocommit; transactions are explicit); closing it last removes -wal/-shm."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def state(db: sqlite3.Connection) -> dict[str, Any]:
    """Where a catalogue stands: generation, last change number, counts (what a manifest records)."""

    def one(sql: str) -> Any:
        row = db.execute(sql).fetchone()
        return row[0] if row and row[0] is not None else 0

    return {
        "schema_version": int(one("PRAGMA main.user_version")),
        "generation": int(one("SELECT value FROM main.meta WHERE key = 'generation'")),
        "change_seq": int(one("SELECT MAX(seq) FROM main.row_changes")),
        "history_id": int(one("SELECT MAX(id) FROM main.history")),
        "image_seq": int(one("SELECT seq FROM main.sqlite_sequence WHERE name = 'images'")),
        "objects": int(one("SELECT count(*) FROM main.objects")),
        "images": int(one("SELECT count(*) FROM main.images")),
        "images_with_features": int(one("SELECT count(*) FROM main.features")),
    }


def bundle_record(db: sqlite3.Connection) -> dict[str, Any] | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (BUNDLE_META,)).fetchone()
    return json.loads(row[0]) if row else None


def set_bundle_record(db: sqlite3.Connection, record: Mapping[str, Any]) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (BUNDLE_META, json.dumps(dict(record), sort_keys=True)))


def changes_since(db: sqlite3.Connection, change_seq: int) -> int:
    return int(db.execute("SELECT count(*) FROM row_changes WHERE seq > ?", (change_seq,)).fetchone()[0])


def write_delta(source: Path, delta_path: Path, base: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, dict[str, int]]:
    """Write the rows changed after `base` (a manifest's catalogue state) into a new SQLite file.

    Every key whose change number is above the base's travels: present rows as they are now
    (objects, photos with vectors, features, meta), absent ones as removals. Reads the live
    catalogue in one read transaction (consistent while a service writes; no full copy).

    Returns:
        The catalogue's state and model (JSON) at that moment, and row counts of the delta.
    """
    db = connect(source)
    try:
        db.execute("ATTACH DATABASE ? AS d", (str(delta_path),))
        seq, history = int(base["change_seq"]), int(base["history_id"])
        db.execute("BEGIN")
        reached = state(db)
        model = db.execute("SELECT value FROM main.meta WHERE key = 'model'").fetchone()
        db.execute(f"CREATE TABLE d.row_changes AS SELECT kind, key, seq FROM main.row_changes WHERE seq > {seq}")
        changed = "(SELECT key FROM d.row_changes WHERE kind = '{}')"
        image_ids = "(SELECT CAST(key AS INTEGER) FROM d.row_changes WHERE kind = 'image')"
        db.execute(f"CREATE TABLE d.objects AS SELECT * FROM main.objects WHERE object_id IN {changed.format('object')}")
        db.execute(f"CREATE TABLE d.images AS SELECT * FROM main.images WHERE image_id IN {image_ids}")
        db.execute(f"CREATE TABLE d.features AS SELECT * FROM main.features WHERE image_id IN {image_ids}")
        db.execute(f"CREATE TABLE d.meta AS SELECT * FROM main.meta WHERE key IN {changed.format('meta')}")
        db.execute(f"CREATE TABLE d.history AS SELECT * FROM main.history WHERE id > {history}")
        db.execute("COMMIT")
        counts = {t: int(db.execute(f"SELECT count(*) FROM d.{t}").fetchone()[0]) for t in
                  ("row_changes", "objects", "images", "features", "meta", "history")}
        db.execute("DETACH DATABASE d")
    finally:
        db.close()
    return reached, model[0] if model else None, counts


def _columns(db: sqlite3.Connection, schema: str, table: str) -> str:
    return ", ".join(r[1] for r in db.execute(f"PRAGMA {schema}.table_info({table})"))


def apply_delta(target: Path, delta_path: Path, base: Mapping[str, Any], goal: Mapping[str, Any]) -> None:
    """Apply a delta to a copy of the catalogue it was made on, in one transaction.

    Rows are replaced by key (foreign keys off, so replacing an object does not cascade to its
    photos); the change log is made equal to the issuer's, so the result is the issuer's state.

    Raises:
        BundleIntegrityError: the result differs from the state the manifest promises.
    """
    db = connect(target)
    try:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("ATTACH DATABASE ? AS d", (str(delta_path),))
        untracked = ", ".join(f"'{k}'" for k in UNTRACKED_META)
        keys = "(SELECT key FROM d.row_changes WHERE kind = '{}')"
        image_ids = "(SELECT CAST(key AS INTEGER) FROM d.row_changes WHERE kind = 'image')"
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(f"DELETE FROM main.objects WHERE object_id IN {keys.format('object')}")
            db.execute(f"DELETE FROM main.images WHERE image_id IN {image_ids}")
            db.execute(f"DELETE FROM main.features WHERE image_id IN {image_ids}")
            db.execute(f"DELETE FROM main.meta WHERE key IN {keys.format('meta')} AND key NOT IN ({untracked})")
            for table in ("objects", "images", "features", "meta", "history"):
                cols = _columns(db, "d", table)
                where = f" WHERE key NOT IN ({untracked})" if table == "meta" else ""
                verb = "INSERT OR REPLACE" if table == "history" else "INSERT"
                db.execute(f"{verb} INTO main.{table} ({cols}) SELECT {cols} FROM d.{table}{where}")
            # Photos of removed objects go with them (the issuer's cascade, done by hand here).
            db.execute("DELETE FROM main.images WHERE object_pk NOT IN (SELECT pk FROM main.objects)")
            db.execute("DELETE FROM main.features WHERE image_id NOT IN (SELECT image_id FROM main.images)")
            db.execute("DELETE FROM main.row_changes WHERE seq > ?", (int(base["change_seq"]),))
            db.execute("INSERT OR REPLACE INTO main.row_changes (kind, key, seq) SELECT kind, key, seq FROM d.row_changes")
            db.execute("UPDATE main.meta SET value = ? WHERE key = 'generation'", (str(int(goal["generation"])),))
            db.execute("DELETE FROM main.sqlite_sequence WHERE name = 'images'")
            db.execute("INSERT INTO main.sqlite_sequence (name, seq) VALUES ('images', ?)", (int(goal["image_seq"]),))
            problems = db.execute("PRAGMA main.foreign_key_check").fetchall()
            if problems:
                raise BundleIntegrityError(
                    f"the delta leaves {len(problems)} rows without their object; it does not fit this catalogue"
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("DETACH DATABASE d")
        reached = state(db)
    finally:
        db.close()
    # Not the count of feature rows: a home keeps features in its store, so its rows come and go
    # (bundles carry them as rows, the receiving Library moves them into its store).
    wrong = {k: (reached[k], goal[k]) for k in ("objects", "images", "generation", "change_seq")
             if k in goal and reached[k] != goal[k]}
    if wrong:
        detail = ", ".join(f"{k} {have} instead of {want}" for k, (have, want) in wrong.items())
        raise BundleIntegrityError(
            f"after applying the delta the catalogue has {detail}: this home's catalogue is not the one the "
            "delta was made on; import a full bundle"
        )


def fill_features(path: Path, store_folder: Path) -> int:
    """Write the local features of every photo in the SQLite file at `path` into its `features` rows.

    A home keeps local features in a compact store beside its catalogue, not in catalogue rows;
    a bundle carries them as rows (which the receiving Library moves into its own store on
    first open), so a post verifies matches exactly as the issuer does. Returns the photos written.
    """
    if not store_folder.is_dir():
        return 0
    from artefact.index.features_store import FeatureStore  # the store is only needed when a home has one

    store = FeatureStore(store_folder)
    db = connect(path)
    written = 0
    try:
        ids = [int(r[0]) for r in db.execute("SELECT image_id FROM images")]
        db.execute("BEGIN")
        # The rows restate features the photos already have: no change for the change log, whose
        # triggers would otherwise give those photos new change numbers.
        db.execute("CREATE TEMP TABLE kept_changes AS SELECT * FROM row_changes")
        for start in range(0, len(ids), 2000):
            found = store.get_many(ids[start:start + 2000])
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(i, *f.to_row()) for i, f in found.items()])
            written += len(found)
        db.execute("DELETE FROM row_changes")
        db.execute("INSERT INTO row_changes SELECT * FROM kept_changes")
        db.execute("DROP TABLE kept_changes")
        db.execute("COMMIT")
    finally:
        db.close()
        store.close()
    return written
