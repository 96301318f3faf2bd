"""Exact store: every vector in memory, every search exhaustive (FAISS IDMap2 over IndexFlatIP).

The right kind up to some tens of thousands of photos: no training, exact answers,
and search time still small. The file format is the one libraries always had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from artefact.embed.fileio import atomic_path
from artefact.index.stores import files
from artefact.index.stores.base import FLAT, Hits, IdSelection
from artefact.index.stores.threads import search_threads
from artefact.index.vectors import INDEX_TYPE, MANIFEST_FORMAT, METRIC, VectorIndex


class FlatStore(VectorIndex):
    """Exact inner-product search; ids are catalogue image ids."""

    @property
    def kind(self) -> str:
        return FLAT

    def search(  # type: ignore[override]
        self,
        xq: np.ndarray,
        k: int,
        selection: IdSelection | None = None,
        allowed: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> list[Hits]:
        """k nearest by inner product among the selected ids (or `allowed`, or all but `excluded`)."""
        with search_threads(len(xq)):
            return self._search(xq, k, selection, allowed, excluded)

    def _search(self, xq: np.ndarray, k: int, selection: IdSelection | None, allowed: np.ndarray | None,
                excluded: np.ndarray | None) -> list[Hits]:
        if selection is None:
            return super().search(xq, k, allowed=allowed, excluded=excluded)
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        if self.ntotal == 0 or selection.count == 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        k = max(1, min(k, self.ntotal))
        sel = selection.faiss_selector()
        D, I = self.index.search(xq, k, params=faiss.SearchParameters(sel=sel))  # type: ignore[call-arg]
        return [(d[i >= 0], i[i >= 0]) for d, i in zip(D, I)]

    def save(self, path: Path, manifest: dict[str, Any]) -> None:
        """Write the index file, then the manifest; both atomically, under the store's save lock."""
        with files.save_lock(path):
            with atomic_path(path) as tmp:
                faiss.write_index(self.index, tmp)  # streams to disk: no in-memory copy of a large index
            files.commit(path, {
                "format": MANIFEST_FORMAT,
                "index_type": INDEX_TYPE,
                "kind": FLAT,
                "metric": METRIC,
                "dim": self.dim,
                "count": self.ntotal,
                **manifest,
            })

    def describe(self) -> dict[str, Any]:
        return {"kind": FLAT, "params": {}, "exact": True, "memory_bytes": self.ntotal * (4 * self.dim + 8)}

    @classmethod
    def from_index(cls, vi: VectorIndex) -> "FlatStore":
        return cls(vi.dim, vi.index)
