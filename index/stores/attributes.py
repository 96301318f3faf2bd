"""Filter fields of every photo as integer codes in arrays indexed by image id: exact filters without SQL per search.

A search's filter (status, object type, country, source, and the recovered exclusion)
becomes an `IdSelection` bitmap computed from these arrays in a few milliseconds even
at a million photos, and cached until the catalogue changes. The arrays follow the
catalogue through its change log (`row_changes`, kept by triggers), reading only the
rows changed since, and are saved beside the catalogue so that opening is fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from artefact.embed.fileio import atomic_path
from artefact.index.records import FILTER_FIELDS
from artefact.index.stores.base import IdSelection

log = logging.getLogger(__name__)

FORMAT = 1
REBUILD_ABOVE = 200_000  # more changed rows than this: one full read is cheaper
_SELECT = ("SELECT i.image_id, " + ", ".join(f"py_lower(o.{f})" for f in FILTER_FIELDS)
           + " FROM images i JOIN objects o ON o.pk = i.object_pk")


def change_seq(db: Any) -> int:
    """The catalogue's latest change number (0 when it has no change log)."""
    try:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM row_changes").fetchone()[0])
    except Exception:  # noqa: BLE001 - sqlite3.OperationalError on catalogues without the log
        return 0


class RecordAttributes:
    """Per-photo filter codes: `codes[field][image_id]` indexes `vocab[field]`; -1 = no such photo."""

    def __init__(self, codes: dict[str, np.ndarray], vocab: dict[str, list[str]], seq: int) -> None:
        self.codes = codes
        self.vocab = vocab
        self.seq = seq
        self._lookup = {f: {v: n for n, v in enumerate(vocab[f])} for f in FILTER_FIELDS}
        self._cache: dict[Any, IdSelection | None] = {}
        self.dirty = False

    @classmethod
    def empty(cls) -> "RecordAttributes":
        return cls({f: np.full(0, -1, np.int32) for f in FILTER_FIELDS}, {f: [] for f in FILTER_FIELDS}, 0)

    # -- building and following the catalogue ----------------------------------------
    @classmethod
    def build(cls, db: Any) -> "RecordAttributes":
        """Read every photo's fields (one pass over the catalogue)."""
        attrs = cls.empty()
        attrs.seq = change_seq(db)
        cur = db.execute(_SELECT)
        while True:
            rows = cur.fetchmany(50_000)
            if not rows:
                break
            attrs._set_rows(rows)
        attrs.dirty = True
        return attrs

    def follow(self, db: Any) -> bool:
        """Apply the catalogue's changes since `seq`; returns True if anything changed."""
        seq = change_seq(db)
        if seq == self.seq:
            return False
        changed = db.execute("SELECT kind, key FROM row_changes WHERE seq > ? AND kind IN ('object', 'image')",
                             (self.seq,)).fetchall()
        if len(changed) > REBUILD_ABOVE:
            fresh = RecordAttributes.build(db)
            self.__dict__.update(fresh.__dict__)
            return True
        objects = [r[1] for r in changed if r[0] == "object"]
        images = [int(r[1]) for r in changed if r[0] == "image"]
        for part in _chunks(objects, 500):
            marks = ", ".join("?" * len(part))
            self._set_rows(db.execute(f"{_SELECT} WHERE o.object_id IN ({marks})", part).fetchall())
        for part in _chunks(images, 500):
            marks = ", ".join("?" * len(part))
            rows = db.execute(f"{_SELECT} WHERE i.image_id IN ({marks})", part).fetchall()
            gone = set(part) - {int(r[0]) for r in rows}
            self._set_rows(rows)
            self._drop(np.asarray(sorted(gone), dtype=np.int64))
        self.seq = seq
        self._cache.clear()
        self.dirty = True
        return True

    def _code(self, field: str, value: str) -> int:
        value = value or ""
        code = self._lookup[field].get(value)
        if code is None:
            code = len(self.vocab[field])
            self.vocab[field].append(value)
            self._lookup[field][value] = code
        return code

    def _grow(self, top: int) -> None:
        n = len(self.codes[FILTER_FIELDS[0]])
        if top <= n:
            return
        size = max(top, 2 * n, 1024)
        for f in FILTER_FIELDS:
            grown = np.full(size, -1, np.int32)
            grown[:n] = self.codes[f]
            self.codes[f] = grown

    def _set_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        self._grow(int(ids.max()) + 1)
        for n, f in enumerate(FILTER_FIELDS, start=1):
            self.codes[f][ids] = np.fromiter((self._code(f, r[n]) for r in rows), dtype=np.int32, count=len(rows))
        self._cache.clear()

    def _drop(self, ids: np.ndarray) -> None:
        ids = ids[ids < len(self.codes[FILTER_FIELDS[0]])]
        for f in FILTER_FIELDS:
            self.codes[f][ids] = -1
        self._cache.clear()

    # -- selections ----------------------------------------------------------------------
    def selection(self, filters: Any) -> IdSelection | None:
        """The photos a search with these filters may return; None = every photo.

        Same meaning as `SearchFilters.where()`: values compared lower-cased, OR within a
        field, AND across fields, recovered objects out unless asked for.
        """
        key = (tuple(tuple(sorted(v.lower() for v in getattr(filters, f))) for f in FILTER_FIELDS),
               bool(filters.include_recovered))
        if key not in self._cache:
            self._cache[key] = self._compute(filters)
        return self._cache[key]

    def _compute(self, filters: Any) -> IdSelection | None:
        status = self.codes["status"]
        mask = status >= 0
        present = int(np.count_nonzero(mask))
        narrowed = False
        for f in FILTER_FIELDS:
            wanted = [v.lower() for v in getattr(filters, f)]
            if wanted:
                codes = [self._lookup[f][v] for v in wanted if v in self._lookup[f]]
                mask &= np.isin(self.codes[f], np.asarray(codes, dtype=np.int32))
                narrowed = True
        statuses = {s.lower() for s in filters.status}
        if not filters.include_recovered and "recovered" not in statuses and "recovered" in self._lookup["status"]:
            mask &= status != self._lookup["status"]["recovered"]
            narrowed = True
        if not narrowed or int(np.count_nonzero(mask)) == present:
            return None
        return IdSelection.from_mask(mask, filters)

    def ids(self, filters: Any) -> np.ndarray:
        sel = self.selection(filters)
        return sel.ids() if sel is not None else np.flatnonzero(self.codes["status"] >= 0).astype(np.int64)

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                arrays: dict[str, Any] = {f"codes_{k}": v for k, v in self.codes.items()}
                arrays["meta"] = np.frombuffer(json.dumps({"format": FORMAT, "seq": self.seq, "vocab": self.vocab}).encode(), np.uint8)
                np.savez(f, **arrays)
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> "RecordAttributes | None":
        """The saved arrays, or None when missing or unreadable (then they are rebuilt)."""
        try:
            with np.load(path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != FORMAT:
                    return None
                codes = {f: np.array(z[f"codes_{f}"], dtype=np.int32) for f in FILTER_FIELDS}
        except (OSError, ValueError, KeyError) as exc:
            log.info("rebuilding filter attributes: %s", exc)
            return None
        return cls(codes, {f: list(meta["vocab"][f]) for f in FILTER_FIELDS}, int(meta["seq"]))


def changed_images(db: Any, since: int, most: int = REBUILD_ABOVE) -> np.ndarray | None:
    """Ids of photos whose filter fields may have changed after change number `since` (their own
    row or their object's); None when more than `most` rows changed (compare them all instead)."""
    changed = db.execute("SELECT kind, key FROM row_changes WHERE seq > ? AND kind IN ('object', 'image')",
                         (since,)).fetchall()
    if len(changed) > most:
        return None
    ids = {int(r[1]) for r in changed if r[0] == "image"}
    objects = [r[1] for r in changed if r[0] == "object"]
    for part in _chunks(objects, 500):
        marks = ", ".join("?" * len(part))
        ids.update(int(r[0]) for r in db.execute(
            f"SELECT i.image_id FROM images i JOIN objects o ON o.pk = i.object_pk WHERE o.object_id IN ({marks})", part))
    return np.asarray(sorted(ids), dtype=np.int64)


def _chunks(items: Sequence[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield list(items[i : i + n])
