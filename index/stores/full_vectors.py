"""Full-precision vectors by image id, memory-mapped from immutable segment files, for exact re-scoring.

Compressed indexes (IVF-PQ, HNSW over PQ) rank approximately; the shortlist is then
scored exactly from these vectors. They stay on disk: the kernel pages in the few
rows a search touches, so a million 1280-d photos (5 GB) cost no resident memory
when a library opens.

Files are never changed once written, so another process may keep using the ones it
mapped while this one saves: a save writes a new segment with the vectors added since
the last one and a new location table (id -> global row); the store manifest names
the files in use.
"""

from __future__ import annotations

import mmap
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from artefact.embed.fileio import atomic_path
from artefact.index.stores.base import StoreError

MAX_SEGMENTS = 8  # more small segments are merged into one at the next save
# Pages of the mapped files that searches touched stay mapped into the process (and count in
# its resident memory) until released: after this many bytes read they are handed back; the
# kernel keeps them in its page cache, so reading them again costs a minor fault, not I/O.
RELEASE_EVERY = 128 << 20
MERGE_CHUNK = 65536  # rows copied at a time when small segments are merged (bounded memory)
DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}  # uint8: quantiser codes


class FullVectors:
    """Vectors by id: saved segments (memory-mapped) + vectors added since (in memory)."""

    def __init__(self, dim: int, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"full-vector dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        self.dim = dim
        self.dtype = dtype
        self._segments: list[tuple[str, np.ndarray]] = []  # (file name, (n, dim) memmap)
        self._starts = np.zeros(1, dtype=np.int64)  # global row where each segment starts; last = saved rows
        self._tail: list[np.ndarray] = []
        self._tail_rows = 0
        self._tail_cache: np.ndarray | None = None
        self._loc = np.full(0, -1, dtype=np.int64)  # id -> global row, -1 = none
        self._count = 0
        self._read_since_release = 0

    # -- state -------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._count

    @property
    def rows(self) -> int:
        """Rows held, dead ones (removed ids) included."""
        return int(self._starts[-1]) + self._tail_rows

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self._loc >= 0).astype(np.int64)

    def has(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), dtype=bool)
        inside = (ids >= 0) & (ids < len(self._loc))
        out[inside] = self._loc[ids[inside]] >= 0
        return out

    # -- edits -------------------------------------------------------------------
    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if ids.min() < 0:
            raise ValueError("image ids must be non-negative")
        if self.has(ids).any() or len(np.unique(ids)) != len(ids):
            raise ValueError("ids already present: remove them before adding new vectors under the same id")
        top = int(ids.max()) + 1
        if top > len(self._loc):
            grown = np.full(max(top, 2 * len(self._loc), 1024), -1, dtype=np.int64)
            grown[: len(self._loc)] = self._loc
            self._loc = grown
        self._loc[ids] = self.rows + np.arange(len(ids))
        self._tail.append(np.ascontiguousarray(xb, dtype=DTYPES[self.dtype]))
        self._tail_rows += len(ids)
        self._tail_cache = None
        self._count += len(ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        present = ids[self.has(ids)]
        present = np.unique(present)
        self._loc[present] = -1
        self._count -= len(present)
        return int(len(present))

    # -- reads -------------------------------------------------------------------
    def get(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors of ids, in order (every id must be present)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not self.has(ids).all():
            raise KeyError("some ids have no stored vector")
        rows = self._loc[ids]
        out = np.empty((len(ids), self.dim), dtype=np.uint8 if self.dtype == "uint8" else np.float32)
        seg = np.searchsorted(self._starts, rows, side="right") - 1  # len(segments) = the tail
        for s in np.unique(seg):
            pick = np.flatnonzero(seg == s)
            local = rows[pick] - self._starts[s]
            if s < len(self._segments):
                order = np.argsort(local)  # ascending offsets read the file front to back
                out[pick[order]] = self._segments[s][1][local[order]]
            else:
                out[pick] = self._tail_matrix()[local]
        self._read_since_release += out.nbytes
        if self._read_since_release > RELEASE_EVERY:
            self.release()
        return out

    def release(self) -> None:
        """Unmap the pages searches touched from this process (they stay in the page cache)."""
        self._read_since_release = 0
        for _, m in self._segments:
            raw = getattr(m, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_DONTNEED"):
                raw.madvise(mmap.MADV_DONTNEED)

    def _tail_matrix(self) -> np.ndarray:
        if self._tail_cache is None:
            self._tail_cache = (np.concatenate(self._tail) if self._tail
                                else np.zeros((0, self.dim), DTYPES[self.dtype]))
            self._tail = [self._tail_cache] if self._tail else []
        return self._tail_cache

    def iter_live(self, chunk: int = 65536) -> Any:
        """Yield (ids, float32 vectors) of every live id, in id order, chunk by chunk."""
        ids = self.ids()
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            yield part, self.get(part)

    # -- persistence -------------------------------------------------------------
    def save(self, folder: Path, prefix: str) -> dict[str, Any]:
        """Write what is new since the last save; returns the manifest entry naming the files.

        The files named before stay valid (never rewritten), so a reader mapping them is unaffected.
        """
        if self._tail_rows:
            name = f"{prefix}-{secrets.token_hex(4)}.{self.dtype}"
            _write_matrix(folder / name, self._tail_matrix())
            self._append_segment(folder, name, self._tail_rows)
            self._tail, self._tail_rows, self._tail_cache = [], 0, None
        if len(self._segments) > MAX_SEGMENTS:
            self._merge_small(folder, prefix)
        loc_name = f"{prefix}-{secrets.token_hex(4)}.loc.npy"
        with atomic_path(folder / loc_name) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, self._loc[: self._used_ids()])
        return {
            "dtype": self.dtype,
            "segments": [[name, int(len(m))] for name, m in self._segments],
            "loc": loc_name,
            "count": self._count,
        }

    def restore_missing(self, folder: Path, prefix: str) -> None:
        """Rewrite segments whose files are gone (another process's save removed them) from our mapping."""
        for n, (name, m) in enumerate(self._segments):
            if len(m) and not (folder / name).exists():
                new = f"{prefix}-{secrets.token_hex(4)}.{self.dtype}"
                _write_matrix(folder / new, np.asarray(m))
                self._segments[n] = (new, _map(folder / new, len(m), self.dim, self.dtype))

    def write_segment(self, folder: Path, prefix: str, chunks: Any) -> None:
        """Stream (ids, vectors) chunks into one new segment file, without holding them all in memory."""
        name = f"{prefix}-{secrets.token_hex(4)}.{self.dtype}"
        all_ids: list[np.ndarray] = []
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as f:
                for ids, xb in chunks:
                    ids = np.asarray(ids, dtype=np.int64)
                    if self.has(ids).any():
                        raise ValueError("ids already present")
                    f.write(np.ascontiguousarray(xb, dtype=DTYPES[self.dtype]).tobytes())
                    all_ids.append(ids)
        ids = np.concatenate(all_ids) if all_ids else np.zeros(0, np.int64)
        if self._tail_rows:
            raise ValueError("write_segment needs a store with nothing unsaved")
        top = int(ids.max()) + 1 if len(ids) else 0
        if top > len(self._loc):
            grown = np.full(top, -1, dtype=np.int64)
            grown[: len(self._loc)] = self._loc
            self._loc = grown
        self._loc[ids] = self.rows + np.arange(len(ids))
        self._append_segment(folder, name, len(ids))
        self._count += len(ids)

    def _used_ids(self) -> int:
        live = np.flatnonzero(self._loc >= 0)
        return int(live[-1]) + 1 if len(live) else 0

    def _append_segment(self, folder: Path, name: str, n: int) -> None:
        self._segments.append((name, _map(folder / name, n, self.dim, self.dtype)))
        self._starts = np.append(self._starts, self._starts[-1] + n)

    def _merge_small(self, folder: Path, prefix: str) -> None:
        """Rewrite the live rows of all but the largest segment into one new segment."""
        keep = int(np.argmax([len(m) for _, m in self._segments]))
        ids = self.ids()
        seg = np.searchsorted(self._starts, self._loc[ids], side="right") - 1
        moving = ids[seg != keep]
        name = f"{prefix}-{secrets.token_hex(4)}.{self.dtype}"
        # Streamed in chunks: the rows moved may be gigabytes (a million-photo build's checkpoints).
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as f:
                for start in range(0, len(moving), MERGE_CHUNK):
                    part = self.get(moving[start : start + MERGE_CHUNK])
                    f.write(np.ascontiguousarray(part, DTYPES[self.dtype]).tobytes())
        kept_name, kept = self._segments[keep]
        kept_rows = self._loc[ids[seg == keep]] - self._starts[keep]
        self._segments, self._starts = [], np.zeros(1, dtype=np.int64)
        self._append_segment(folder, kept_name, len(kept))
        self._loc[ids[seg == keep]] = kept_rows
        self._append_segment(folder, name, len(moving))
        self._loc[moving] = len(kept) + np.arange(len(moving))

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any], dim: int) -> "FullVectors":
        fv = cls(dim, entry.get("dtype", "float32"))
        try:
            for name, n in entry["segments"]:
                fv._append_segment(folder, name, int(n))
            loc = np.load(folder / entry["loc"])
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"cannot read the full vectors in {folder}: {exc}") from exc
        fv._loc = np.asarray(loc, dtype=np.int64).copy()
        fv._count = int(np.count_nonzero(fv._loc >= 0))
        if len(fv._loc) and int(fv._loc.max()) >= fv.rows:
            raise StoreError(f"the vector location table in {folder} points past its segments")
        return fv

    def rename_segments(self, renamed: dict[str, str]) -> None:
        """Record new names of segment files moved elsewhere (their mappings stay valid)."""
        self._segments = [(renamed.get(name, name), m) for name, m in self._segments]

    def files(self) -> list[str]:
        return [name for name, _ in self._segments]

    def nbytes_on_disk(self) -> int:
        return int(sum(m.nbytes for _, m in self._segments))


def _write_matrix(path: Path, x: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # fsynced and renamed into place
        with open(tmp, "wb") as f:
            f.write(np.ascontiguousarray(x).tobytes())


def _map(path: Path, n: int, dim: int, dtype: str) -> np.ndarray:
    if n == 0:
        return np.zeros((0, dim), DTYPES[dtype])
    try:
        m = np.memmap(path, dtype=DTYPES[dtype], mode="r", shape=(n, dim))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot map {path}: {exc}") from exc
    # Searches read scattered rows: no read-ahead, so only the rows used become resident.
    raw = getattr(m, "_mmap", None)
    if raw is not None and hasattr(mmap, "MADV_RANDOM"):
        raw.madvise(mmap.MADV_RANDOM)
    return m
