"""Shared machinery of the compressed stores: a FAISS index ranks a shortlist, full vectors re-score it.

A compressed index (IVF-PQ, HNSW over scalar-quantised codes) ranks approximately; its
shortlist is re-ranked with 4-bit scalar codes (IVF-PQ; memory-mapped, 0.64 KB a photo),
and the best 2k are scored exactly from the full vectors on disk (memory-mapped), so the
similarities returned are exact and recall@10 is limited only by whether the true
neighbours reach the shortlist. (Re-scoring hundreds of photos straight from the full
vectors cost ~12 ms of CPU per query at 100k photos on this machine: page faults, and
pages reclaimed between queries; the codes, an eighth of the size, take ~5 ms at 1M.)

Filters stay exact: FAISS skips ids outside the selection bitmap while it scans, the
scan widens as the selection narrows, and when a narrow selection still yields fewer
than k results the search falls back to an exhaustive pass (then to exact scoring of
the selected vectors), so k allowed results come back whenever k exist.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import faiss
import numpy as np

from artefact.embed.fileio import atomic_path, utc_iso
from artefact.index.stores import files
from artefact.index.stores.base import Hits, IdSelection, StoreError
from artefact.index.stores.full_vectors import FullVectors
from artefact.index.stores.threads import search_threads

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 2
METRIC = "inner_product"
# Selections this small are scored exactly from the full vectors: cheaper than any scan.
EXACT_BELOW = 2048


@dataclass
class BuildInfo:
    """How and on what a compressed index was trained; the basis of 'optimize is due'."""

    id: str = field(default_factory=lambda: secrets.token_hex(4))
    created_at: str = field(default_factory=utc_iso)
    trained_on: int = 0  # training sample size
    ntotal_at_build: int = 0
    fit_at_build: float = 0.0  # mean similarity of training vectors to their nearest coarse centroid
    added_since: int = 0  # vectors added after the build
    added_fit_sum: float = 0.0  # sum of the same similarity over them (drift shows as a lower mean)
    removed_since: int = 0
    recall_at_10: float | None = None  # measured against exact search on held-out catalogue vectors
    target_recall: float | None = None
    recall_queries: int = 0
    filtered_recall_at_10: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BuildInfo":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ApproximateStore:
    """Base of compressed stores: subclasses say how to shortlist; the rest is shared."""

    KIND = ""

    def __init__(self, dim: int, index: Any, full: FullVectors, params: dict[str, Any],
                 build: BuildInfo | None = None, sq: Any = None, rerank: FullVectors | None = None) -> None:
        self.dim = dim
        self.index = index
        self.full = full
        self.params = dict(params)
        self.build = build or BuildInfo()
        self.sq = sq  # trained faiss.IndexScalarQuantizer whose codes re-rank the shortlist (or None)
        self.rerank = rerank if rerank is not None else (FullVectors(sq.sa_code_size(), "uint8") if sq else None)

    # -- subclass hooks ------------------------------------------------------------
    def _shortlist(self, xq: np.ndarray, n: int, sel: Any, widen: float, exhaustive: bool) -> np.ndarray:
        """Candidate ids (nq, n), -1 padded, ranked approximately."""
        raise NotImplementedError

    def _index_add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        raise NotImplementedError

    def _index_remove(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _fit(self, xb: np.ndarray) -> np.ndarray:
        """Similarity of each vector to its nearest coarse centroid (for drift); zeros if none."""
        return np.zeros(len(xb), np.float32)

    # -- VectorStore ---------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def ntotal(self) -> int:
        return self.full.count

    def ids(self) -> np.ndarray:
        return self.full.ids()

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        if xb.ndim != 2 or xb.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {xb.shape} do not fit an index of dimension {self.dim}")
        self.full.add(ids, xb)  # refuses duplicates before the index is touched
        if self.rerank is not None:
            self.rerank.add(ids, self.sq.sa_encode(xb))
        self._index_add(ids, xb)
        self.build.added_since += len(ids)
        self.build.added_fit_sum += float(self._fit(xb).sum())

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        present = np.unique(ids[self.full.has(ids)])
        if len(present) == 0:
            return 0
        self._index_remove(present)
        self.full.remove(present)
        if self.rerank is not None:
            self.rerank.remove(present)
        self.build.removed_since += len(present)
        return int(len(present))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return self.full.get(np.asarray(ids, dtype=np.int64))

    def search(self, xq: np.ndarray, k: int, selection: IdSelection | None = None) -> list[Hits]:
        with search_threads(len(xq)):
            return self._search(np.ascontiguousarray(xq, dtype=np.float32), k, selection)

    def _search(self, xq: np.ndarray, k: int, selection: IdSelection | None) -> list[Hits]:
        available = self.ntotal if selection is None else min(selection.count, self.ntotal)
        if available == 0 or k <= 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        k = min(k, available)
        if selection is not None and selection.count <= int(self.params.get("exact_below", EXACT_BELOW)):
            return self._exact(xq, k, selection.ids())
        n = max(int(self.params.get("shortlist", 200)), 2 * k)  # candidates re-scored exactly
        sel = selection.faiss_selector() if selection is not None else None
        # The narrower the filter, the wider the scan: the k nearest allowed lie further out.
        widen = (self.ntotal / max(available, 1)) ** float(self.params.get("filter_widen", 0.5))
        out: list[Hits] = []
        for exhaustive in (False, True):
            cand = self._shortlist(xq, n, sel, widen, exhaustive)
            out = self._rescore(xq, cand, k)
            if all(len(i) >= k for _, i in out):
                return out
        # The exhaustive pass sees every selected vector, so this is for exotic cases only.
        return self._exact(xq, k, selection.ids() if selection is not None else self.ids())

    def _rescore(self, xq: np.ndarray, cand: np.ndarray, k: int) -> list[Hits]:
        keep = max(2 * k, 32)  # scored exactly after the codes' re-ranking: a margin for their error
        if self.rerank is not None and cand.shape[1] > keep:
            cand = self._rerank(xq, cand, keep)
        flat = np.unique(cand[cand >= 0])
        flat = flat[self.full.has(flat)]
        if len(flat) == 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        S = xq @ self.full.get(flat).T
        out: list[Hits] = []
        for r in range(len(xq)):
            mine = np.unique(cand[r][cand[r] >= 0])
            cols = np.searchsorted(flat, mine)
            ok = (cols < len(flat)) & (flat[np.minimum(cols, len(flat) - 1)] == mine)
            cols, mine = cols[ok], mine[ok]
            s = S[r, cols]
            order = np.lexsort((mine, -s))[:k]  # ties broken by id: stable answers
            out.append((s[order].astype(np.float32), mine[order]))
        return out

    def _rerank(self, xq: np.ndarray, cand: np.ndarray, m: int) -> np.ndarray:
        """The best m of each query's candidates by the scalar codes (-1 padded)."""
        assert self.rerank is not None
        flat = np.unique(cand[cand >= 0])
        flat = flat[self.rerank.has(flat)]
        out = np.full((len(xq), m), -1, np.int64)
        if len(flat) == 0:
            return out
        S = xq @ self.sq.sa_decode(self.rerank.get(flat)).T
        for r in range(len(xq)):
            mine = np.unique(cand[r][cand[r] >= 0])
            cols = np.searchsorted(flat, mine)
            ok = (cols < len(flat)) & (flat[np.minimum(cols, len(flat) - 1)] == mine)
            cols, mine = cols[ok], mine[ok]
            top = np.argsort(-S[r, cols], kind="stable")[:m]
            out[r, : len(top)] = mine[top]
        return out

    def _exact(self, xq: np.ndarray, k: int, ids: np.ndarray) -> list[Hits]:
        ids = ids[self.full.has(ids)]
        out: list[Hits] = []
        if len(ids) == 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        best_s = np.full((len(xq), 0), -np.inf, np.float32)
        best_i = np.zeros((len(xq), 0), np.int64)
        for start in range(0, len(ids), 65536):  # bounded memory even for a wide selection
            part = ids[start : start + 65536]
            S = xq @ self.full.get(part).T
            best_s = np.hstack([best_s, S])
            best_i = np.hstack([best_i, np.broadcast_to(part, S.shape)])
            if best_s.shape[1] > k:
                top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_s = np.take_along_axis(best_s, top, axis=1)
                best_i = np.take_along_axis(best_i, top, axis=1)
        for r in range(len(xq)):
            order = np.lexsort((best_i[r], -best_s[r]))[:k]
            out.append((best_s[r][order].astype(np.float32), best_i[r][order]))
        return out

    # -- persistence -----------------------------------------------------------------
    def save(self, path: Path, manifest: dict[str, Any]) -> None:
        """New files for what changed, then the manifest naming them, under the save lock."""
        prefix = files.file_prefix(path)
        with files.save_lock(path):
            folder = path.parent
            # A segment another process's save dropped is rewritten from the mapping this one holds.
            self.full.restore_missing(folder, prefix)
            index_name = f"{prefix}-{secrets.token_hex(4)}.faiss"
            with atomic_path(folder / index_name) as tmp:
                faiss.write_index(self.index, tmp)
            full_entry = self.full.save(folder, prefix)
            extra: dict[str, Any] = {}
            if self.rerank is not None:
                self.rerank.restore_missing(folder, prefix)
                extra["rerank"] = self.rerank.save(folder, prefix)
                extra["sq"] = f"{prefix}-sq-{self.build.id}.faiss"
                if not (folder / extra["sq"]).exists():
                    with atomic_path(folder / extra["sq"]) as tmp:
                        faiss.write_index(self.sq, tmp)
            files.commit(path, {
                "format": MANIFEST_FORMAT,
                "kind": self.kind,
                "index_type": self.params.get("spec", ""),
                "metric": METRIC,
                "dim": self.dim,
                "count": self.ntotal,
                "files": {"index": index_name, "full": full_entry, **extra},
                "params": self.params,
                "build": asdict(self.build),
                **manifest,
            })

    @classmethod
    def load(cls, path: Path, manifest: dict[str, Any]) -> "ApproximateStore":
        folder = path.parent
        try:
            index = faiss.read_index(str(folder / manifest["files"]["index"]))
        except (OSError, RuntimeError, KeyError) as exc:
            raise StoreError(f"cannot read the {cls.KIND} index in {folder}: {exc}") from exc
        dim = int(manifest["dim"])
        full = FullVectors.load(folder, manifest["files"]["full"], dim)
        sq, rerank = None, None
        if manifest["files"].get("sq"):
            try:
                sq = faiss.read_index(str(folder / manifest["files"]["sq"]))
            except (OSError, RuntimeError) as exc:
                raise StoreError(f"cannot read the re-ranking quantiser in {folder}: {exc}") from exc
            # Mapped, not read: at a million photos the codes are 640 MB that opening would read
            # (seconds) and hold resident; a search touches only its shortlist's rows.
            rerank = FullVectors.load(folder, manifest["files"]["rerank"], sq.sa_code_size())
        store = cls(dim, index, full, manifest.get("params") or {}, BuildInfo.from_dict(manifest.get("build") or {}),
                    sq, rerank)
        if int(index.ntotal) != full.count:
            raise StoreError(f"{path}: the index holds {index.ntotal} vectors, the full vectors {full.count}")
        return store

    def describe(self) -> dict[str, Any]:
        b = self.build
        added_fit = b.added_fit_sum / b.added_since if b.added_since else None
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "exact": False,
            "build": {**asdict(b), "added_fit_mean": None if added_fit is None else round(added_fit, 4)},
            "memory_bytes": self.memory_bytes(),
            "full_vectors_bytes": self.full.nbytes_on_disk(),
            "full_vectors_dtype": self.full.dtype,
        }

    def memory_bytes(self) -> int:
        return len(faiss.serialize_index(self.index)) if self.ntotal < 200_000 else -1


def fill(store: ApproximateStore, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
    for ids, xb in chunks:
        store.add(ids, xb)
