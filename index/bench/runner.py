"""The evaluation runner: every query through the engine's search (one by one, or batched), timed and ranked."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from artefact.embed.preprocess import load_for_model
from artefact.index.bench.metrics import QueryResult, breakdown, rank_of, summarise
from artefact.index.bench.queries import Query, check_expected_ids
from artefact.index.catalogue import SearchFilters
from artefact.index.search import IMAGE, SearchResult, answer_order, default_threshold, rank, search

log = logging.getLogger(__name__)

DISTRACTOR = "distractor"  # object type recorded for a query whose object is not in the catalogue


@dataclass
class EvalRun:
    """One configuration's evaluation: its label, model, per-query results and summaries."""

    label: str
    config: dict[str, Any]
    results: list[QueryResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        by_type = breakdown([r for r in self.results if r.expected_id is not None], "object_type")
        return {
            "label": self.label,
            "config": self.config,
            "overall": summarise(self.results),
            "by_condition": breakdown(self.results, "condition"),
            "by_condition_severity": breakdown(self.results, "condition/severity"),
            "by_object_type": by_type,
        }


def evaluate(
    library: Any,
    embedder: Any,
    queries: Sequence[Query],
    *,
    label: str = "default",
    k: int = 10,
    search_k: int | None = None,
    filters: Any = None,
    batch_size: int = 1,
    search_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> EvalRun:
    """Run every query through `artefact.index.search.search` and record what came back.


    Args:
        library: an open `Library`.
        embedder: its model (anything `search` accepts).
        queries: from `read_queries` or the benchmark builder.
        k: the largest cut-off reported (recall@k).
        search_k: how many objects to rank per query (default: the whole catalogue,
            capped at 100), so mAP/MRR see ranks beyond k.
        filters: `SearchFilters`; default includes recovered objects (an evaluation
            measures recognition, not the status filter).
        batch_size: 1 (default) runs each query through `search()` alone, so its
            latency is what an officer waits for. More embeds that many queries'
            photos in one model batch (much faster on CPU); each query's latency is
            then its decode + its share of the batch + its own index search.
            Batched queries are ranked and judged by `rank()` without the second
            look (re-ranking is left out), so use 1 to measure the engine exactly
            as deployed.
        search_options: extra keyword arguments for `search()` (e.g. `{"rerank": 0}`
            where the installed search supports it); recorded in the report.

    Raises:
        ManifestError: a query's expected id is not in the catalogue.
    """
    filters = filters if filters is not None else SearchFilters(include_recovered=True)
    n_objects = int(library.catalogue.counts()["objects"])
    depth = search_k or max(k, min(n_objects, 100))
    types = {r.object_id: r.fields.get("object_type", "") for r in library.catalogue.list_objects(
        SearchFilters(include_recovered=True), limit=10**9, offset=0)}
    check_expected_ids(queries, types)  # an unknown true object could never be found: refuse up front
    model = getattr(embedder, "description", None)
    run = EvalRun(label, {
        "model": model.label() if model is not None else "?",
        "home": str(library.home),
        "objects": n_objects,
        "images": int(library.catalogue.counts()["images"]),
        "threshold": default_threshold(model),
        "search_k": depth,
        "batch_size": batch_size,
        "search_options": dict(search_options or {}) if batch_size == 1 else "no second look (batched)",
    })
    bar = _progress(len(queries), progress, label)
    step = max(1, batch_size)
    for start in range(0, len(queries), step):
        chunk = queries[start : start + step]
        if step == 1:
            outcomes = [_one_query(library, embedder, chunk[0], depth, filters, dict(search_options or {}))]
        else:
            outcomes = _batched_queries(library, embedder, chunk, depth, filters)
        for q, (result, ms, error) in zip(chunk, outcomes):
            obj_type = DISTRACTOR if q.expected_id is None else types.get(q.expected_id, "")
            if error:
                log.warning("query %s failed: %s", q.photos, error)
            run.results.append(query_result(q, result, ms, error, obj_type))
        bar.update(len(chunk))
    bar.close()
    return run


def query_result(q: Query, result: SearchResult | None, ms: float, error: str | None, obj_type: str) -> QueryResult:
    """What the officer saw for one query, ranked in the service's own answer order.

    The rank is the true object's position in `answer_order` (ties broken as the
    service breaks them), not a pessimistic rank by calibrated probability: many
    unverified candidates share the calibration's floor probability and the
    service orders those by similarity.
    """
    matches = (answer_order(result.matches, result.calibration, result.reranked, result.strong_evidence)
               if result is not None else [])
    ids = [m.record.object_id for m in matches]
    # Confidence = the calibrated probability where the index has one, else the similarity.
    scores = [float(m.probability) if m.probability is not None else float(m.score) for m in matches]
    return QueryResult([str(p) for p in q.photos], q.expected_id, q.condition, q.severity, obj_type, ids, scores,
                       rank_of(ids, q.expected_id), ms, error,
                       similarities=[float(m.score) for m in matches], verdicts=[m.verdict for m in matches],
                       calibrated=result is not None and result.calibration is not None)


def _one_query(library: Any, embedder: Any, q: Query, depth: int, filters: Any,
               options: dict[str, Any]) -> tuple[SearchResult | None, float, str | None]:
    t0 = time.perf_counter()
    try:
        res = search(library, embedder, q.photos, k=depth, filters=filters, **options)
    except Exception as exc:  # noqa: BLE001 - a bad query photo is recorded, not fatal
        return None, 0.0, f"{type(exc).__name__}: {exc}"
    return res, (time.perf_counter() - t0) * 1e3, None


def _batched_queries(library: Any, embedder: Any, chunk: Sequence[Query], depth: int,
                     filters: Any) -> list[tuple[SearchResult | None, float, str | None]]:
    """The same decode, model and search code as `search()`, with the model run once per chunk."""
    arrays: list[np.ndarray] = []
    spans: list[tuple[int, int] | None] = []
    decode_ms: list[float] = []
    errors: list[str | None] = []
    for q in chunk:
        t0 = time.perf_counter()
        try:
            arrs = [load_for_model(p, embedder.preprocess)[0] for p in q.photos]
        except Exception as exc:  # noqa: BLE001 - recorded per query
            spans.append(None)
            errors.append(f"{type(exc).__name__}: {exc}")
            decode_ms.append(0.0)
            continue
        spans.append((len(arrays), len(arrays) + len(arrs)))
        arrays += arrs
        errors.append(None)
        decode_ms.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    xq = embedder.embed_prepared(arrays).astype(np.float32) if arrays else np.zeros((0, 0), np.float32)
    per_photo_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(arrays))
    out: list[tuple[SearchResult | None, float, str | None]] = []
    for span, dms, err in zip(spans, decode_ms, errors):
        if span is None:
            out.append((None, 0.0, err))
            continue
        t1 = time.perf_counter()
        # The service's own ranking and verdicts, without the second look (no photos passed).
        res = rank(library, xq[span[0] : span[1]], [IMAGE] * (span[1] - span[0]), (), k=depth, filters=filters,
                   rerank=0)
        sms = (time.perf_counter() - t1) * 1e3
        out.append((res, dms + per_photo_ms * (span[1] - span[0]) + sms, None))
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, label: str) -> Any:
    if not enabled:
        return _NoBar()
    return tqdm(total=total, unit="query", desc=label, leave=False)
