"""Index-only fixtures (the shared model fixtures live in tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index_helpers import SAMPLE_IMAGES, VECTOR_STORES, CountingEmbedder


@pytest.fixture
def sample_root(tmp_path) -> Path:
    """A private, writable copy of the sample catalogue photos."""
    root = tmp_path / "images"
    shutil.copytree(SAMPLE_IMAGES, root)
    return root


@pytest.fixture
def counting_tiny(tiny_embedder) -> CountingEmbedder:
    return CountingEmbedder(tiny_embedder)


@pytest.fixture(scope="module", params=VECTOR_STORES)
def vector_store(request) -> str:
    """Each vector store in turn (module scope: a module's libraries share one Milvus Lite start per store)."""
    if request.param == "milvus-lite":
        pytest.importorskip("milvus_lite", reason="the scale extra (pymilvus + milvus-lite) is not installed")
    return str(request.param)
