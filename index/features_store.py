"""Local features outside SQLite: compact records in append-only shard files, found through an offset log.

A million photos' SIFT features as SQLite rows took ~66 KB each (512 keypoints, float
positions, 128-byte descriptors). Here each photo keeps its strongest KEEP keypoints,
positions as 1/16-pixel integers and descriptors at 4 bits per value (on the square-root
scale RootSIFT matching uses), about 16 KB, written once at the end of a shard file; a
fixed-size entry (image id, shard, offset, length) appended to `offsets.log` finds it, and
a zero-length entry removes it. Opening reads the log (24 bytes per entry) into arrays
indexed by id; a read of 20 candidates' features is a few `pread`s.

Writers append under a lock file, payload first (fsynced), then the log entries, so a
crash leaves at worst an unreferenced tail that the next writer overwrites. Readers in
other processes pick up new entries with `refresh()`.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from artefact.index.errors import CatalogueError
from artefact.index.verification import Features

log = logging.getLogger(__name__)

# Chosen by measurement (benchmarks/bench_features_store.py on the project's recall benchmark):
# see that script's docstring for recall@1 with re-ranking per setting.
KEEP = 224  # strongest keypoints kept per catalogue photo (queries still extract DEFAULT_N_FEATURES)
DESC_BITS = 4  # SIFT descriptor values on a 4-bit square-root scale (ORB's binary ones stay as they are)
SHARD_BYTES = 1 << 30
XY_SCALE = 16  # positions stored as uint16 in 1/16 pixel (working images are at most 640 px)

LOG_ENTRY = np.dtype([("id", "<i8"), ("shard", "<i4"), ("offset", "<i8"), ("length", "<i4")])
HEADER = np.dtype([("kind", "u1"), ("bits", "u1"), ("dim", "<u2"), ("n", "<u2"), ("w", "<u2"), ("h", "<u2")])
KINDS = {"sift": 1, "orb": 2}
KIND_NAMES = {v: k for k, v in KINDS.items()}


class FeatureStoreError(CatalogueError):
    """The local-feature store is damaged or refers to data that is not there."""


# -- compact records ---------------------------------------------------------------------
def encode(f: Features, keep: int = KEEP, bits: int = DESC_BITS) -> bytes:
    """One photo's features as a compact record (strongest `keep` keypoints: extraction order)."""
    n = min(len(f), keep)
    dim = int(f.desc.shape[1]) if f.desc.ndim == 2 and len(f.desc) else (32 if f.kind == "orb" else 128)
    code_bits = bits if f.kind == "sift" else 8
    head = np.array([(KINDS[f.kind], code_bits, dim, n, f.size[0], f.size[1])], dtype=HEADER)
    xy = np.clip(np.round(np.asarray(f.xy[:n], np.float32) * XY_SCALE), 0, 65535).astype("<u2")
    desc = np.asarray(f.desc[:n], np.uint8)
    if code_bits == 4:
        # sqrt scale: the RootSIFT kernel compares square roots, so quantise those evenly.
        q = np.round(np.sqrt(desc.astype(np.float32) / 255.0) * 15).astype(np.uint8)
        desc = (q[:, 0::2] << 4 | q[:, 1::2]).astype(np.uint8)
    return head.tobytes() + xy.tobytes() + desc.tobytes()


def decode(data: bytes) -> Features:
    head = np.frombuffer(data, HEADER, count=1)[0]
    kind, bits, dim, n = KIND_NAMES[int(head["kind"])], int(head["bits"]), int(head["dim"]), int(head["n"])
    at = HEADER.itemsize
    xy = np.frombuffer(data, "<u2", count=2 * n, offset=at).reshape(n, 2).astype(np.float32) / XY_SCALE
    at += 4 * n
    if bits == 4:
        packed = np.frombuffer(data, np.uint8, count=n * dim // 2, offset=at).reshape(n, dim // 2)
        q = np.empty((n, dim), np.uint8)
        q[:, 0::2], q[:, 1::2] = packed >> 4, packed & 15
        desc = np.round((q.astype(np.float32) / 15) ** 2 * 255).astype(np.uint8)
    else:
        desc = np.frombuffer(data, np.uint8, count=n * dim, offset=at).reshape(n, dim).copy()
    return Features(kind, xy, desc, (int(head["w"]), int(head["h"])))


# -- the store ---------------------------------------------------------------------------------
class FeatureStore:
    """Compact local features by image id, in `folder` (beside the catalogue)."""

    def __init__(self, folder: Path, keep: int = KEEP, bits: int = DESC_BITS) -> None:
        self.folder = Path(folder)
        self.keep, self.bits = keep, bits
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log_path = self.folder / "offsets.log"
        self._shard = np.full(0, -1, np.int32)  # id -> shard (-1: none)
        self._offset = np.zeros(0, np.int64)
        self._length = np.zeros(0, np.int32)
        self._read_upto = 0  # bytes of the log applied
        self._log_inode = -1
        self._bad_tail_from: int | None = None
        self._lost: set[int] = set()  # ids whose last record lies past its shard's end (damage or a crash)
        self._fds: dict[int, int] = {}
        self.refresh()

    def _reset(self) -> None:
        self.close()
        self._lost = set()
        self._shard = np.full(0, -1, np.int32)
        self._offset, self._length, self._read_upto = np.zeros(0, np.int64), np.zeros(0, np.int32), 0

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # -- reading -------------------------------------------------------------------------
    def refresh(self) -> int:
        """Apply log entries appended since the last read (by this or another process)."""
        try:
            st = self._log_path.stat()
        except FileNotFoundError:
            return 0
        if st.st_ino != self._log_inode:  # `compact` replaced the log: read the new one from the start
            self._reset()
            self._log_inode = st.st_ino
        size = st.st_size
        whole = (size - self._read_upto) // LOG_ENTRY.itemsize
        if whole <= 0:
            return 0
        with open(self._log_path, "rb") as f:
            f.seek(self._read_upto)
            entries = np.frombuffer(f.read(whole * LOG_ENTRY.itemsize), LOG_ENTRY)
        ok = self._valid(entries)
        # Entries at the end whose records never reached their shard (a crash): the next writer
        # cuts them off, so that a later append cannot make them point at someone else's bytes.
        bad_tail = len(ok) - int(np.argmax(ok[::-1])) if ok.any() else 0
        self._bad_tail_from = self._read_upto + bad_tail * LOG_ENTRY.itemsize if not ok.all() and not ok[-1] else None
        self._lost.update(int(i) for i in entries["id"][~ok])
        entries = entries[ok]
        self._lost.difference_update(int(i) for i in entries["id"])
        self._apply(entries)
        self._read_upto += whole * LOG_ENTRY.itemsize
        return int(len(entries))

    def _valid(self, entries: np.ndarray) -> np.ndarray:
        """Entries whose record lies wholly inside its shard (a crashed write leaves neither)."""
        ok = np.ones(len(entries), bool)
        for shard in np.unique(entries["shard"][entries["length"] > 0]):
            try:
                size = self._shard_path(int(shard)).stat().st_size
            except FileNotFoundError:
                size = 0
            mine = (entries["shard"] == shard) & (entries["length"] > 0)
            ok[mine] = entries["offset"][mine] + entries["length"][mine] <= size
        return ok

    def _apply(self, entries: np.ndarray) -> None:
        if not len(entries):
            return
        ids = entries["id"]
        top = int(ids.max()) + 1
        if top > len(self._shard):
            size = max(top, 2 * len(self._shard), 1024)
            self._shard = np.concatenate([self._shard, np.full(size - len(self._shard), -1, np.int32)])
            self._offset = np.concatenate([self._offset, np.zeros(size - len(self._offset), np.int64)])
            self._length = np.concatenate([self._length, np.zeros(size - len(self._length), np.int32)])
        # The last entry of an id wins (fancy assignment keeps the last duplicate).
        self._shard[ids] = np.where(entries["length"] > 0, entries["shard"], -1)
        self._offset[ids] = entries["offset"]
        self._length[ids] = entries["length"]

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self._shard >= 0).astype(np.int64)

    def has(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        a = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(a), bool)
        inside = (a >= 0) & (a < len(self._shard))
        out[inside] = self._shard[a[inside]] >= 0
        return out

    def __len__(self) -> int:
        return int(np.count_nonzero(self._shard >= 0))

    def get_many(self, ids: Iterable[int]) -> dict[int, Features]:
        """Features of the ids that have some (others are left out)."""
        wanted = np.asarray(sorted({int(i) for i in ids}), dtype=np.int64)
        wanted = wanted[self.has(wanted)]
        out: dict[int, Features] = {}
        for i in wanted:
            out[int(i)] = decode(self._read(int(self._shard[i]), int(self._offset[i]), int(self._length[i])))
        return out

    def _read(self, shard: int, offset: int, length: int) -> bytes:
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(str(self._shard_path(shard)), os.O_RDONLY)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise FeatureStoreError(f"{self._shard_path(shard)}: record at {offset} is cut short")
        return data

    def _shard_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:06d}.bin"

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(str(self.folder / "write.lock"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def put_many(self, items: Sequence[tuple[int, Features]]) -> None:
        """Store (or replace) the features of these photos."""
        if not items:
            return
        records = [encode(f, self.keep, self.bits) for _, f in items]
        with self._locked():
            self.refresh()
            log_size = self._trim_log()
            shard = self._current_shard()
            path = self._shard_path(shard)
            with open(path, "ab") as f:
                start = f.tell()
                f.write(b"".join(records))
                f.flush()
                os.fsync(f.fileno())
            lengths = np.asarray([len(r) for r in records], np.int64)
            offsets = start + np.concatenate([[0], np.cumsum(lengths)[:-1]])
            entries = np.zeros(len(items), LOG_ENTRY)
            entries["id"] = [i for i, _ in items]
            entries["shard"], entries["offset"], entries["length"] = shard, offsets, lengths
            self._append_log(entries, log_size)

    def remove(self, ids: Iterable[int]) -> int:
        """Forget the features of these photos (space is reclaimed by `compact`)."""
        with self._locked():
            self.refresh()
            gone = [int(i) for i in ids if self.has([int(i)])[0]]
            if gone:
                entries = np.zeros(len(gone), LOG_ENTRY)
                entries["id"] = gone
                self._append_log(entries, self._trim_log())
        return len(gone)

    def _trim_log(self) -> int:
        """Cut a torn last entry off the log; returns its size."""
        try:
            size = self._log_path.stat().st_size
        except FileNotFoundError:
            return 0
        whole = size - size % LOG_ENTRY.itemsize
        if self._bad_tail_from is not None and self._bad_tail_from < whole:
            whole = self._bad_tail_from
            self._read_upto = min(self._read_upto, whole)
            self._bad_tail_from = None
        if whole != size:
            os.truncate(self._log_path, whole)
        return whole

    def _append_log(self, entries: np.ndarray, at: int) -> None:
        with open(self._log_path, "ab") as f:
            f.write(entries.tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.refresh()

    def _current_shard(self) -> int:
        shards = sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("shard-*.bin"))
        if not shards:
            return 1
        last = shards[-1]
        return last + 1 if self._shard_path(last).stat().st_size >= SHARD_BYTES else last

    # -- upkeep ------------------------------------------------------------------------------
    def stats(self) -> dict[str, float | int]:
        live = self._shard >= 0
        total = int(sum(p.stat().st_size for p in self.folder.glob("shard-*.bin")))
        used = int(self._length[live].sum())
        n = int(live.sum())
        return {"photos": n, "bytes": total, "live_bytes": used,
                "bytes_per_photo": round(used / n, 1) if n else 0.0, "keep": self.keep, "bits": self.bits}

    def problems(self, catalogue_ids: np.ndarray, check_every: int = 1) -> list[str]:
        """What `index check` reports: unreadable records, features of no photo."""
        found: list[str] = []
        ids = self.ids()
        extra = np.setdiff1d(ids, catalogue_ids)
        if len(extra):
            found.append(f"{len(extra)} photos' local features belong to no catalogue photo")
        bad = 0
        for i in ids[:: max(1, check_every)]:
            try:
                f = decode(self._read(int(self._shard[i]), int(self._offset[i]), int(self._length[i])))
                if len(f.xy) != len(f.desc):
                    bad += 1
            except (FeatureStoreError, OSError, ValueError, KeyError):
                bad += 1
        if bad:
            found.append(f"{bad} local-feature records are unreadable")
        lost = np.intersect1d(np.fromiter(self._lost, np.int64, len(self._lost)), catalogue_ids)
        if len(lost):
            found.append(f"{len(lost)} photos' local-feature records are cut short (damaged shard or a crashed "
                         "write); `artefact index add` extracts them again")
        return found

    def compact(self) -> int:
        """Rewrite live records into new shards and a new log (after many removals); returns bytes freed."""
        with self._locked():
            self.refresh()
            before = self.stats()["bytes"]
            ids = self.ids()
            records = [(int(i), self._read(int(self._shard[i]), int(self._offset[i]), int(self._length[i]))) for i in ids]
            old = sorted(self.folder.glob("shard-*.bin"))
            first = (max(int(p.stem.split("-")[1]) for p in old) + 1) if old else 1
            entries = np.zeros(len(records), LOG_ENTRY)
            shard, offset = first, 0
            out = open(self._shard_path(shard), "wb")
            try:
                for n, (i, data) in enumerate(records):
                    if offset + len(data) > SHARD_BYTES and offset:
                        out.close()
                        shard, offset = shard + 1, 0
                        out = open(self._shard_path(shard), "wb")
                    out.write(data)
                    entries[n] = (i, shard, offset, len(data))
                    offset += len(data)
                out.flush()
                os.fsync(out.fileno())
            finally:
                out.close()
            tmp = self._log_path.with_suffix(".new")
            with open(tmp, "wb") as f:
                f.write(entries.tobytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._log_path)
            for p in old:
                p.unlink()
            self.refresh()  # a new log inode: re-read from the start
            return int(before - self.stats()["bytes"])
