"""Calibration samples from labelled queries: each query's top candidates as (score, inliers, is-true, margin) rows.

This runs searches, so it lives in the lab; `artefact.index.calibration` only fits
the samples and so never imports search (which imports it).
"""

from __future__ import annotations

from typing import Any, Sequence

from artefact.index.bench.queries import Query
from artefact.index.catalogue import SearchFilters
from artefact.index.search import DEFAULT_RERANK, search

# similarity, verified correspondences (None: not checked), label, margin over the best other candidate
Sample = tuple[float, int | None, int, float]


def collect_samples(library: Any, embedder: Any, queries: Sequence[Query], depth: int = 10,
                    rerank: int = DEFAULT_RERANK) -> tuple[list[Sample], list[int]]:
    """Search every labelled query and turn its top candidates into (score, inliers, label) samples.

    Args:
        queries: labelled queries (expected_id None = distractor).
        depth: candidates per query; the true object counts as 1, every other as 0.
        rerank: candidates given geometric verification (0 = similarity only).

    Returns:
        The samples and, for each, the index of the query it came from (so a fit can
        hold out whole queries).
    """
    samples: list[Sample] = []
    groups: list[int] = []
    for n, q in enumerate(queries):
        # threshold=1.0: plain ranking; verdicts are what is being fitted here.
        result = search(library, embedder, q.photos, k=depth, rerank=rerank,
                        filters=SearchFilters(include_recovered=True), threshold=1.0)
        for m in result.matches:  # margins as the search read them (over its whole candidate pool)
            samples.append((float(m.score), m.inliers, int(m.record.object_id == q.expected_id), m.margin))
            groups.append(n)
    return samples, groups
