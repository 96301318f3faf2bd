"""The library API that notebooks call refuses a model other than the one that built the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from artefact.index.errors import IndexMismatchError
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
from artefact.index.search import search

from index_helpers import SAMPLE_CSV, SAMPLE_QUERIES, CountingEmbedder, other_weights


def test_search_refuses_same_dimension_other_weights_before_embedding(tmp_path: Path, sample_root: Path, tiny_embedder) -> None:
    home = tmp_path / "home"
    with Library(home) as library:
        ingest_manifest(library, tiny_embedder, SAMPLE_CSV, sample_root, workers=0, progress=False)
    query = SAMPLE_QUERIES / "query-painting-SMP-PAINT-01.jpg"
    impostor = CountingEmbedder(tiny_embedder, other_weights(tiny_embedder.description))
    assert impostor.description.dim == tiny_embedder.description.dim
    with Library(home) as library:
        with pytest.raises(IndexMismatchError, match="built with .*tiny-clip.*weights"):
            search(library, impostor, photos=[query])
        with pytest.raises(IndexMismatchError):
            search(library, impostor, text=["a painting"])
        assert impostor.embedded == 0  # refused before any work
        # the index's own model still searches
        own = sorted((sample_root / "SMP-PAINT-01").iterdir())[0]
        assert search(library, tiny_embedder, photos=[own], rerank=0).matches[0].record.object_id == "SMP-PAINT-01"
