"""HNSW store: a proximity graph over 4-bit scalar-quantised vectors (`IDMap,HNSW{M}_SQ4`), exact re-scoring.

Graph search visits few nodes, so it is fast at any size and needs no training beyond
the quantiser's ranges; but FAISS cannot delete from an HNSW graph, so removed photos
become tombstones the searches skip until `optimize` rebuilds the graph; the graph and
codes cost more memory than IVF-PQ (about 0.9 KB per 1280-d photo), and a graph is slow
to build on few cores (every insert searches it). PQ codes under the graph were tried:
their 8-bit codebooks took minutes to train even for a few thousand vectors here.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from artefact.index.stores.approximate import ApproximateStore, BuildInfo
from artefact.index.stores.base import HNSW, IdSelection
from artefact.index.stores.full_vectors import FullVectors

MAX_EF = 4096


def spec_for(m: int, sq: str = "SQ4") -> str:
    return f"IDMap,HNSW{m}_{sq}"


class HnswStore(ApproximateStore):
    KIND = HNSW

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live: IdSelection | None = None  # cached live-id bitmap while tombstones exist
        self._dead = int(self.index.ntotal) - self.full.count

    def search(self, xq: np.ndarray, k: int, selection: IdSelection | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._dead > 0:
            # Tombstones: search only live ids (intersected with the caller's selection).
            live = self._live_selection()
            if selection is None:
                selection = live
            else:
                n = min(len(live.bitmap), len(selection.bitmap))
                both = np.zeros(len(selection.bitmap), np.uint8)
                both[:n] = selection.bitmap[:n] & live.bitmap[:n]
                selection = IdSelection(both, int(np.unpackbits(both).sum()), selection.filters)
        return super().search(xq, k, selection)

    def _live_selection(self) -> IdSelection:
        if self._live is None:
            self._live = IdSelection.from_ids(self.full.ids())
        return self._live

    def _shortlist(self, xq: np.ndarray, n: int, sel: Any, widen: float, exhaustive: bool) -> np.ndarray:
        base = int(self.params.get("ef_search", 64))
        ef = MAX_EF if exhaustive else min(MAX_EF, max(base, math.ceil(base * widen)))
        params = faiss.SearchParametersHNSW(efSearch=max(ef, n), sel=sel)  # type: ignore[attr-defined]
        _, I = self.index.search(xq, n, params=params)
        return np.asarray(I)

    def _index_add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        self.index.add_with_ids(xb, ids)
        self._live = None

    def _index_remove(self, ids: np.ndarray) -> None:
        self._dead += len(ids)  # the graph keeps them; the live bitmap hides them
        self._live = None

    @property
    def tombstones(self) -> int:
        return self._dead

    @classmethod
    def train(cls, dim: int, sample: np.ndarray, params: dict[str, Any], dtype: str = "float32") -> "HnswStore":
        spec = spec_for(int(params.get("m", 32)), str(params.get("sq", "SQ4")))
        index: Any = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        hnsw: Any = faiss.downcast_index(faiss.downcast_index(index).index)  # type: ignore[attr-defined]
        hnsw.hnsw.efConstruction = int(params.get("ef_construction", 40))
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(dim, index, FullVectors(dim, dtype), {**params, "spec": spec}, BuildInfo(trained_on=len(sample)))

    def memory_bytes(self) -> int:
        m = int(self.params.get("m", 32))
        bits = {"SQ4": 4, "SQ6": 6, "SQ8": 8}.get(str(self.params.get("sq", "SQ4")), 8)
        return int(self.index.ntotal * (self.dim * bits // 8 + 8 + 2 * m * 4 * 1.05))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tombstones": self._dead}
