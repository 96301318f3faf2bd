"""Shared helpers for tests/index (a uniquely named module: imported as `index_helpers`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artefact.index.home import Home
from artefact.index.stores.choice import settle

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
SAMPLE_CSV = SAMPLE / "catalogue.csv"
SAMPLE_JSONL = SAMPLE / "catalogue.jsonl"
SAMPLE_IMAGES = SAMPLE / "images"
SAMPLE_QUERIES = SAMPLE / "queries"


class CountingEmbedder:
    """Wraps an embedder and counts the photos it is asked to embed; may pose as another model."""

    def __init__(self, inner: Any, description: Any = None) -> None:
        self.inner = inner
        self.description = description or inner.description
        self.preprocess = inner.preprocess
        self.embedded = 0

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        self.embedded += len(arrays)
        return self.inner.embed_prepared(arrays)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_text(texts)


def other_weights(description: Any) -> Any:
    """The same architecture and dimension, different weights: vectors not comparable."""
    return replace(description, weights_sha256="0" * 64)


VECTOR_STORES = ("faiss", "milvus-lite")


def use_vector_store(home: Path, store: str) -> None:
    """Make a new home keep its vectors in `store` (faiss: the default, nothing to record)."""
    if store == "milvus-lite":
        settle(Home(home), "milvus-lite:vectors.db")  # a Milvus Lite file inside the home
    elif store != "faiss":
        raise ValueError(store)
