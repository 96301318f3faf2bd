"""FAISS vector index keyed by image id, with an atomically written file and JSON manifest."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from artefact.index.errors import CatalogueError
from artefact.embed.fileio import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

METRIC = "inner_product"  # on L2-normalised vectors: cosine similarity, higher is better
INDEX_TYPE = "IDMap2,Flat"
MANIFEST_FORMAT = 1


class VectorIndex:
    """Exact inner-product search over image vectors, ids = catalogue image ids."""

    def __init__(self, dim: int, index: Any | None = None) -> None:
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        if len(ids) == 0:
            return
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        if xb.ndim != 2 or xb.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {xb.shape} do not fit an index of dimension {self.dim}")
        self.index.add_with_ids(xb, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self.index.remove_ids(sel))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for row, i in enumerate(ids):
            out[row] = self.index.reconstruct(int(i))
        return out

    def search(
        self,
        xq: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """k nearest by inner product, restricted inside FAISS to `allowed` ids or away from `excluded`.

        Returns:
            One (D, I) pair per query: similarities and ids, FAISS's -1 padding trimmed.
        """
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        if self.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        k = max(1, min(k, self.ntotal))
        # Locals keep the selectors alive for the whole call: FAISS holds raw pointers.
        sel: Any = None
        inner: Any = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        elif excluded is not None and len(excluded):
            inner = faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64))
            sel = faiss.IDSelectorNot(inner)
        params: Any = faiss.SearchParameters(sel=sel) if sel is not None else None  # type: ignore[call-arg]
        D, I = self.index.search(xq, k, params=params)
        return [(d[i >= 0], i[i >= 0]) for d, i in zip(D, I)]

    # -- persistence ----------------------------------------------------------
    def save(self, path: Path, manifest: dict[str, Any]) -> None:
        """Write index then manifest, each atomically; the manifest names the generation saved."""
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, tmp)  # streams to disk: no in-memory copy of a large index
        full = {
            "format": MANIFEST_FORMAT,
            "index_type": INDEX_TYPE,
            "metric": METRIC,
            "dim": self.dim,
            "count": self.ntotal,
            **manifest,
        }
        atomic_write_bytes(manifest_path(path), json.dumps(full, indent=2, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path) -> tuple["VectorIndex", dict[str, Any]]:
        try:
            manifest = json.loads(manifest_path(path).read_text())
            index = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError) as exc:
            raise CatalogueError(f"cannot read vector index {path}: {exc}") from exc
        return cls(int(index.d), index), manifest


def manifest_path(index_path: Path) -> Path:
    return index_path.with_suffix(".json")
