"""The vector-store seam: a small Protocol every store implements, and the id selection searches take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from artefact.index.errors import CatalogueError

FLAT, IVF_PQ, HNSW = "flat", "ivf-pq", "hnsw"
KINDS = (FLAT, IVF_PQ, HNSW)

# Results of one query: similarities (higher is closer) and image ids, FAISS's -1 padding trimmed.
Hits = tuple[np.ndarray, np.ndarray]


class StoreError(CatalogueError):
    """A vector store's files are missing, unreadable, or of an unknown kind."""


@dataclass(frozen=True)
class IdSelection:
    """Which image ids a search may return: a bitmap over ids (bit i set = id i allowed).

    Built once per distinct filter from in-memory per-field codes (no SQL per search);
    FAISS reads the same bytes through `IDSelectorBitmap`. `filters` names the filter it
    was made from, for stores that prefer to push filters down themselves (e.g. Milvus).
    """

    bitmap: np.ndarray  # uint8, little bit order: id i is bit (i & 7) of byte i >> 3
    count: int
    filters: Any = None
    _keep: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_mask(cls, mask: np.ndarray, filters: Any = None) -> "IdSelection":
        """From a boolean array indexed by id."""
        mask = np.asarray(mask, dtype=bool)
        return cls(np.packbits(mask, bitorder="little"), int(np.count_nonzero(mask)), filters)

    @classmethod
    def from_ids(cls, ids: np.ndarray, filters: Any = None) -> "IdSelection":
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and ids.min() < 0:
            raise ValueError("ids must be non-negative")
        mask = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
        mask[ids] = True
        return cls.from_mask(mask, filters)

    @property
    def size(self) -> int:
        """Ids below this bound can be members (bitmap length in bits)."""
        return len(self.bitmap) * 8

    def contains(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < self.size)
        out = np.zeros(len(ids), dtype=bool)
        j = ids[inside]
        out[inside] = (self.bitmap[j >> 3] >> (j & 7)) & 1 == 1
        return out

    def ids(self) -> np.ndarray:
        return np.flatnonzero(np.unpackbits(self.bitmap, bitorder="little")).astype(np.int64)

    def faiss_selector(self) -> Any:
        """A FAISS IDSelectorBitmap over this bitmap (valid while this selection lives)."""
        import faiss

        bitmap = np.ascontiguousarray(self.bitmap)
        self._keep[:] = [bitmap]  # FAISS keeps a raw pointer: the array must outlive the search
        return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))


@runtime_checkable
class VectorStore(Protocol):
    """Inner-product search over unit vectors keyed by catalogue image id.

    The catalogue (SQLite) holds every vector, so a store is a rebuildable cache;
    `Library` reconciles it by id. Scores are similarities: higher is closer.
    """

    dim: int

    @property
    def kind(self) -> str: ...

    @property
    def ntotal(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors under the given ids, without retraining anything."""

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The full-precision stored vectors of these ids, in order."""

    def search(self, xq: np.ndarray, k: int, selection: IdSelection | None = None) -> list[Hits]:
        """k nearest per query among the selected ids; k are returned whenever k are selected."""

    def save(self, path: Path, manifest: dict[str, Any]) -> None:
        """Persist atomically: `path` is the store's main file, its manifest lies beside it."""

    def describe(self) -> dict[str, Any]:
        """Kind, parameters and measured quality, for stats."""
