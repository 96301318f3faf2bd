"""Vector stores behind one Protocol: exact flat search, IVF-PQ and HNSW with exact re-scoring.

`open_store` reads whichever kind a library's manifest names; `optimize` (see
optimize.py) builds and tunes a new one and swaps it in atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from artefact.index.stores import files
from artefact.index.stores.approximate import ApproximateStore
from artefact.index.stores.base import FLAT, HNSW, IVF_PQ, KINDS, Hits, IdSelection, StoreError, VectorStore
from artefact.index.stores.flat import FlatStore
from artefact.index.stores.hnsw import HnswStore
from artefact.index.stores.ivfpq import IvfPqStore
from artefact.index.vectors import VectorIndex

log = logging.getLogger(__name__)

APPROXIMATE: dict[str, type[ApproximateStore]] = {IVF_PQ: IvfPqStore, HNSW: HnswStore}

__all__ = [
    "FLAT", "HNSW", "IVF_PQ", "KINDS", "FlatStore", "HnswStore", "Hits", "IdSelection", "IvfPqStore",
    "StoreError", "VectorStore", "kind_of", "open_store",
]


def kind_of(manifest: dict[str, Any]) -> str:
    """The store kind a manifest describes (manifests from before stores existed are flat)."""
    return str(manifest.get("kind") or FLAT)


def open_store(path: Path) -> tuple[VectorStore, dict[str, Any]]:
    """Load the store whose manifest lies beside `path` (the library's `vectors.faiss`).

    Raises:
        StoreError: no manifest, an unknown kind, or unreadable files.
    """
    last: Exception | None = None
    for _ in range(3):  # a concurrent save may replace the files between reading the manifest and them
        try:
            manifest = files.read_manifest(path)
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {files.manifest_path(path)}: {exc}") from exc
        if manifest is None:
            raise StoreError(f"{files.manifest_path(path)} does not exist")
        kind = kind_of(manifest)
        try:
            if kind == FLAT:
                vi, manifest = VectorIndex.load(path)
                return FlatStore.from_index(vi), manifest
            if kind not in APPROXIMATE:
                raise StoreError(f"{path}: unknown vector store kind {kind!r} (this program knows {', '.join(KINDS)})")
            return APPROXIMATE[kind].load(path, manifest), manifest
        except StoreError as exc:
            last = exc
            if files.read_manifest(path) == manifest:
                raise
            log.info("the vector store changed while it was being opened; opening the new one")
    raise StoreError(f"cannot open the vector store at {path}: {last}")
