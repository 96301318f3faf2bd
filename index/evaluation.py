"""Recall evaluation: query lists, ranking metrics (pure numpy), the evaluation runner and its report.

Metric conventions (tested in tests/index/test_evaluation.py):

* A query has one true object (`expected_id`) or none (a *distractor*: an object
  not in the catalogue). Ranks are 1-based; `None` means the true object was not
  returned at all.
* Ties are counted **pessimistically**: when other objects score exactly the
  same as the true object, the true object is ranked after all of them
  (`rank_of`). Likewise in GAP and the precision/recall curve, at equal
  confidence wrong answers are counted before right ones. A metric can then
  never be improved by a lucky tie order.
* recall@k, mAP and MRR are over queries with a true object only. With one
  relevant object per query, average precision is 1/rank, so mAP equals MRR
  here; both are reported because they diverge once several photos or objects
  count as relevant. k larger than the catalogue is allowed (recall@k is then
  the share of queries whose true object was returned at all).
* GAP (Global Average Precision, as in The Met dataset and Google Landmarks
  "micro-AP"): every query, distractors included, contributes its top-1
  prediction with its confidence; sort all by confidence, descending;
  GAP = (1/M) sum_i P(i) rel(i), where P(i) is precision over the first i
  predictions, rel(i) = 1 when prediction i is the true object, and M is the
  number of queries that have a true object in the catalogue.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from artefact.embed.errors import ManifestError
from artefact.index.manifest import json_lines

log = logging.getLogger(__name__)

DISTRACTOR = "distractor"
KS = (1, 5, 10)
PERCENTILES = (50, 90, 95, 99)


# -- query lists ------------------------------------------------------------------
@dataclass
class Query:
    """One evaluation query: photo(s) of one object and the object it truly is (None = distractor)."""

    photos: list[Path]
    expected_id: str | None
    condition: str = ""
    severity: int = 0
    line: int = 0

    @property
    def is_distractor(self) -> bool:
        return self.expected_id is None


def _query_from(line: int, data: Mapping[str, Any], folder: Path) -> Query:
    raw = data.get("query") or data.get("photos") or data.get("photo")
    if isinstance(raw, str):
        refs = [p.strip() for p in raw.split(";") if p.strip()]
    elif isinstance(raw, list):
        refs = [str(p).strip() for p in raw if str(p).strip()]
    else:
        refs = []
    if not refs:
        raise ManifestError(f"query list line {line}: no query photo (column `query`)")
    expected = str(data.get("expected_id") or "").strip() or None
    sev_raw = str(data.get("severity") or "").strip()
    try:
        severity = int(sev_raw) if sev_raw else 0
    except ValueError as exc:
        raise ManifestError(f"query list line {line}: severity {sev_raw!r} is not an integer") from exc
    return Query(
        photos=[(folder / r) for r in refs],
        expected_id=expected,
        condition=str(data.get("condition") or "").strip(),
        severity=severity,
        line=line,
    )


def read_queries(path: Path) -> list[Query]:
    """Read a query list (CSV or JSON Lines); photo paths are relative to the list's folder.

    Columns / keys: `query` (one path, or several separated by `;`; a JSON list in
    JSONL), `expected_id` (empty = distractor), optional `condition`, `severity`.

    Raises:
        ManifestError: missing file, unknown format or an unusable line.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"query list {path} not found")
    folder = path.parent
    out: list[Query] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, data, problem in json_lines(path):
            if data is None:
                raise ManifestError(f"query list line {n}: {problem}")
            out.append(_query_from(n, data, folder))
    elif path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not reader.fieldnames or "query" not in reader.fieldnames:
                raise ManifestError(f"{path}: the header needs a `query` column")
            for n, row in enumerate(reader, start=2):
                out.append(_query_from(n, row, folder))
    else:
        raise ManifestError(f"{path}: query lists are .csv or .jsonl")
    return out


def write_queries(path: Path, queries: Iterable[Query]) -> None:
    """Write a query list CSV, photo paths relative to its folder (atomic)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "expected_id", "condition", "severity"])
        for q in queries:
            refs = ";".join(str(Path(p).relative_to(path.parent)) if Path(p).is_absolute() else str(p) for p in q.photos)
            w.writerow([refs, q.expected_id or "", q.condition, q.severity or ""])
    tmp.replace(path)


# -- metrics (pure functions on rankings) --------------------------------------------
def rank_of(ranked_ids: Sequence[str], expected_id: str | None, scores: Sequence[float] | None = None) -> int | None:
    """1-based rank of the true object in a ranking, None when absent or no true object.

    With `scores`, ties are pessimistic: objects scoring exactly the true object's
    score count as ranked before it, whatever order they were returned in.
    """
    if expected_id is None:
        return None
    ids = list(ranked_ids)
    if expected_id not in ids:
        return None
    pos = ids.index(expected_id)
    if scores is None:
        return pos + 1
    s = np.asarray(scores, dtype=np.float64)
    return int(np.count_nonzero(s >= s[pos]))


def _found_ranks(ranks: Sequence[int | None]) -> np.ndarray:
    return np.asarray([r if r is not None else np.inf for r in ranks], dtype=np.float64)


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries (with a true object) whose true object is within the top k."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if len(ranks) == 0:
        return float("nan")
    return float(np.mean(_found_ranks(ranks) <= k))


def average_precision(relevant_ranks: Sequence[int], n_relevant: int | None = None) -> float:
    """Average precision of one ranking given the 1-based ranks of its relevant items.

    With a single relevant item this is 1/rank; items never retrieved count as
    precision 0 through `n_relevant` (default: len(relevant_ranks)).
    """
    n = len(relevant_ranks) if n_relevant is None else n_relevant
    if n == 0:
        return float("nan")
    r = np.sort(np.asarray(relevant_ranks, dtype=np.float64))
    return float(np.sum(np.arange(1, len(r) + 1) / r) / n)


def mean_average_precision(ranks: Sequence[int | None]) -> float:
    """mAP over queries with one true object each (absent = AP 0)."""
    if len(ranks) == 0:
        return float("nan")
    return float(np.mean([average_precision([r]) if r is not None else 0.0 for r in ranks]))


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """Mean of 1/rank of the first correct answer (absent = 0)."""
    if len(ranks) == 0:
        return float("nan")
    return float(np.mean(1.0 / _found_ranks(ranks)))


def _global_order(scores: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    # Descending score; at equal score wrong answers first (pessimistic), then input order.
    order = np.lexsort((np.arange(len(s)), c, -s))
    return s[order], c[order]


def gap(top1_scores: Sequence[float], top1_correct: Sequence[bool], n_with_true: int) -> float:
    """Global Average Precision over all queries' top-1 predictions (distractors included).

    Args:
        top1_scores: confidence of each query's top prediction (a query with no
            prediction at all is simply left out).
        top1_correct: whether that prediction is the query's true object (always
            False for a distractor).
        n_with_true: M, the number of queries whose true object is in the catalogue.
    """
    if n_with_true <= 0:
        return float("nan")
    _, c = _global_order(top1_scores, top1_correct)
    if len(c) == 0:
        return 0.0
    precision = np.cumsum(c) / np.arange(1, len(c) + 1)
    return float(np.sum(precision * c) / n_with_true)


def precision_recall_curve(
    top1_scores: Sequence[float], top1_correct: Sequence[bool], n_with_true: int
) -> dict[str, list[float]]:
    """Precision and recall of "report the top-1 answer when its score >= t", one point per distinct score.

    Returns:
        {"threshold": [...descending...], "precision": [...], "recall": [...]}; recall
        is over the n_with_true queries that have a true object.
    """
    s, c = _global_order(top1_scores, top1_correct)
    if len(s) == 0:
        return {"threshold": [], "precision": [], "recall": []}
    tp = np.cumsum(c)
    n = np.arange(1, len(c) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold admits every answer with that score
    denom = max(n_with_true, 1)
    return {
        "threshold": s[last].tolist(),
        "precision": (tp[last] / n[last]).tolist(),
        "recall": (tp[last] / denom).tolist(),
    }


def false_alarm_rate(distractor_top1_scores: Sequence[float], thresholds: Sequence[float]) -> list[float]:
    """Share of distractor queries whose best answer scores >= each threshold (a wrong "match")."""
    d = np.asarray(distractor_top1_scores, dtype=np.float64)
    if len(d) == 0:
        return [float("nan")] * len(thresholds)
    return [float(np.mean(d >= t)) for t in thresholds]


def latency_percentiles(ms: Sequence[float], percentiles: Sequence[int] = PERCENTILES) -> dict[str, float]:
    """p50/p90/... of query latencies in milliseconds (linear interpolation)."""
    if len(ms) == 0:
        return {f"p{p}": float("nan") for p in percentiles}
    a = np.asarray(ms, dtype=np.float64)
    return {f"p{p}": float(np.percentile(a, p)) for p in percentiles} | {"mean": float(a.mean())}


# -- results ---------------------------------------------------------------------------
@dataclass
class QueryResult:
    """What one query returned, with its true object's rank."""

    photos: list[str]
    expected_id: str | None
    condition: str
    severity: int
    object_type: str
    ranked_ids: list[str]
    scores: list[float]
    rank: int | None
    latency_ms: float
    error: str | None = None

    @property
    def top1_score(self) -> float | None:
        return self.scores[0] if self.scores else None

    @property
    def top1_correct(self) -> bool:
        return self.rank == 1


def summarise(results: Sequence[QueryResult], thresholds: Sequence[float] | None = None) -> dict[str, Any]:
    """All metrics for a set of query results (see module docstring for definitions)."""
    usable = [r for r in results if r.error is None]
    true_q = [r for r in usable if r.expected_id is not None]
    distract = [r for r in usable if r.expected_id is None]
    ranks = [r.rank for r in true_q]
    answered = [r for r in usable if r.top1_score is not None]
    top1_s = [float(r.top1_score) for r in answered if r.top1_score is not None]
    top1_c = [r.top1_correct for r in answered]
    if thresholds is None:
        thresholds = [round(float(t), 2) for t in np.arange(0.0, 1.0001, 0.05)]
    d_scores = [float(r.top1_score) for r in distract if r.top1_score is not None]
    t_scores = [r.scores[r.ranked_ids.index(r.expected_id)] for r in true_q if r.expected_id in r.ranked_ids]
    return {
        "queries": len(results),
        "errors": len(results) - len(usable),
        "with_true_object": len(true_q),
        "distractors": len(distract),
        **{f"recall@{k}": recall_at_k(ranks, k) if ranks else float("nan") for k in KS},
        "mAP": mean_average_precision(ranks),
        "MRR": mean_reciprocal_rank(ranks),
        "GAP": gap(top1_s, top1_c, len(true_q)),
        "latency_ms": latency_percentiles([r.latency_ms for r in usable]),
        "false_alarm": {
            "threshold": list(thresholds),
            "rate": false_alarm_rate(d_scores, thresholds),
            # detection at the same thresholds: true object first and scoring >= t
            "true_detection_rate": [
                float(np.mean([r.top1_correct and (r.top1_score or 0.0) >= t for r in true_q])) if true_q else float("nan")
                for t in thresholds
            ],
        },
        "score_true_match": t_scores,
        "score_distractor_top1": d_scores,
        "pr_curve": precision_recall_curve(top1_s, top1_c, len(true_q)),
    }


def breakdown(results: Sequence[QueryResult], key: str) -> dict[str, dict[str, Any]]:
    """Compact metrics per value of `key` (condition, severity, object_type, condition/severity)."""
    groups: dict[str, list[QueryResult]] = {}
    for r in results:
        if key == "condition/severity":
            value = f"{r.condition or '-'}/{r.severity}"
        else:
            value = str(getattr(r, key) or "-")
        groups.setdefault(value, []).append(r)
    out = {}
    for value, rs in sorted(groups.items()):
        s = summarise(rs)
        out[value] = {k: s[k] for k in ("queries", "with_true_object", "distractors", "recall@1", "recall@5", "recall@10", "mAP", "GAP")}
        d = s["score_distractor_top1"]
        out[value]["distractor_top1_max"] = max(d) if d else float("nan")
    return out


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
            Batched queries are ranked by embedding similarity alone (`search_vectors`):
            any re-ranking `search()` does is left out, so use 1 to measure the
            engine exactly as deployed.
        search_options: extra keyword arguments for `search()` (e.g. `{"rerank": 0}`
            where the installed search supports it); recorded in the report.
    """
    from artefact.index.catalogue import SearchFilters
    from artefact.index.search import default_threshold

    filters = filters if filters is not None else SearchFilters(include_recovered=True)
    n_objects = int(library.catalogue.counts()["objects"])
    depth = search_k or max(k, min(n_objects, 100))
    types = {r.object_id: r.fields.get("object_type", "") for r in library.catalogue.list_objects(
        SearchFilters(include_recovered=True), limit=10**9, offset=0)}
    model = getattr(embedder, "description", None)
    run = EvalRun(label, {
        "model": model.label() if model is not None else "?",
        "home": str(library.home),
        "objects": n_objects,
        "images": int(library.catalogue.counts()["images"]),
        "threshold": default_threshold(model),
        "search_k": depth,
        "batch_size": batch_size,
        "search_options": dict(search_options or {}) if batch_size == 1 else "embedding similarity only (batched)",
    })
    bar = _progress(len(queries), progress, label)
    step = max(1, batch_size)
    for start in range(0, len(queries), step):
        chunk = queries[start : start + step]
        if step == 1:
            outcomes = [_one_query(library, embedder, chunk[0], depth, filters, dict(search_options or {}))]
        else:
            outcomes = _batched_queries(library, embedder, chunk, depth, filters)
        for q, (matches, ms, error) in zip(chunk, outcomes):
            obj_type = DISTRACTOR if q.expected_id is None else types.get(q.expected_id, "")
            ids = [m.record.object_id for m in matches]
            # Confidence = the calibrated probability where the index has one (it orders the
            # answers then), else the similarity.
            scores = [float(m.probability) if getattr(m, "probability", None) is not None else float(m.score)
                      for m in matches]
            if error:
                log.warning("query %s failed: %s", q.photos, error)
            run.results.append(QueryResult([str(p) for p in q.photos], q.expected_id, q.condition, q.severity,
                                           obj_type, ids, scores, rank_of(ids, q.expected_id, scores), ms, error))
        bar.update(len(chunk))
    bar.close()
    missing = {q.expected_id for q in queries if q.expected_id is not None and q.expected_id not in types}
    if missing:
        log.warning("%d expected ids are not in the catalogue (e.g. %s): those queries can never be found",
                    len(missing), sorted(missing)[:3])
    return run


def _one_query(library: Any, embedder: Any, q: Query, depth: int, filters: Any,
               options: dict[str, Any]) -> tuple[list[Any], float, str | None]:
    from artefact.index.search import search

    t0 = time.perf_counter()
    try:
        res = search(library, embedder, q.photos, k=depth, filters=filters, **options)
    except Exception as exc:  # noqa: BLE001 - a bad query photo is recorded, not fatal
        return [], 0.0, f"{type(exc).__name__}: {exc}"
    return res.matches, (time.perf_counter() - t0) * 1e3, None


def _batched_queries(library: Any, embedder: Any, chunk: Sequence[Query], depth: int,
                     filters: Any) -> list[tuple[list[Any], float, str | None]]:
    """The same decode, model and search code as `search()`, with the model run once per chunk."""
    from artefact.embed.preprocess import load_for_model
    from artefact.index.search import IMAGE, search_vectors

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
    out: list[tuple[list[Any], float, str | None]] = []
    for span, dms, err in zip(spans, decode_ms, errors):
        if span is None:
            out.append(([], 0.0, err))
            continue
        t1 = time.perf_counter()
        matches = search_vectors(library, xq[span[0] : span[1]], [IMAGE] * (span[1] - span[0]), k=depth, filters=filters)
        sms = (time.perf_counter() - t1) * 1e3
        out.append((matches, dms + per_photo_ms * (span[1] - span[0]) + sms, None))
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, label: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="query", desc=label, leave=False)


# -- report -----------------------------------------------------------------------------
def _clean(x: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


def build_report(runs: Sequence[EvalRun]) -> dict[str, Any]:
    """The JSON report: one summary per configuration plus a side-by-side table."""
    summaries = [r.summary() for r in runs]
    table = [
        {"label": s["label"], "model": s["config"]["model"],
         **{m: s["overall"][m] for m in ("recall@1", "recall@5", "recall@10", "mAP", "MRR", "GAP")},
         "latency_p50_ms": s["overall"]["latency_ms"]["p50"], "latency_p95_ms": s["overall"]["latency_ms"]["p95"]}
        for s in summaries
    ]
    return _clean({
        "metric_notes": {
            "ties": "pessimistic: an object scoring the same as the true object is ranked before it",
            "recall@k/mAP/MRR": "over queries with a true object in the catalogue",
            "GAP": "all queries' top-1 answers sorted by score; (1/M) sum P(i) rel(i); distractors are false positives",
        },
        "comparison": table,
        "runs": summaries,
        "queries": {r.label: [asdict(q) for q in r.results] for r in runs},
    })


def write_report(out: Path, runs: Sequence[EvalRun], plots: bool = True) -> dict[str, Any]:
    """Write report.json (and PNG plots) into `out`; returns the report with `files` listing what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(runs)
    files = []
    if plots:
        files = [str(p) for p in write_plots(out, report)]
    report["files"] = ["report.json", *[Path(f).name for f in files]]
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    tmp.replace(out / "report.json")
    return report


def write_plots(out: Path, report: Mapping[str, Any]) -> list[Path]:
    """recall@k bars, true-vs-distractor score histograms, recall@1 by condition, PR curve and false alarms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    paths = []
    nan = float("nan")

    def val(x: Any) -> float:
        return nan if x is None else float(x)

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(runs))
    for i, s in enumerate(runs):
        ys = [val(s["overall"][f"recall@{k}"]) for k in KS]
        ax.bar(np.arange(len(KS)) + i * width, ys, width, label=s["label"])
    ax.set_xticks(np.arange(len(KS)) + width * (len(runs) - 1) / 2, [f"recall@{k}" for k in KS])
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Recall@k (queries with a true object)")
    paths.append(_save(fig, out / "recall_at_k.png"))

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for ax, s in zip(axes[0], runs):
        bins = np.linspace(min([0.0, *s["overall"]["score_true_match"], *s["overall"]["score_distractor_top1"]]), 1, 31)
        ax.hist(s["overall"]["score_true_match"], bins=bins, alpha=0.6, label="true object's score")
        ax.hist(s["overall"]["score_distractor_top1"], bins=bins, alpha=0.6, label="distractor's best score")
        thr = s["config"].get("threshold")
        if thr is not None:
            ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr}")
        ax.set_title(s["label"])
        ax.set_xlabel("cosine similarity")
        ax.legend(fontsize=7)
    paths.append(_save(fig, out / "score_distributions.png"))

    conds = sorted({c for s in runs for c in s["by_condition"]})
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(conds)), 4))
    for i, s in enumerate(runs):
        ys = [val(s["by_condition"].get(c, {}).get("recall@1")) for c in conds]
        ax.bar(np.arange(len(conds)) + i * width, ys, width, label=s["label"])
    ax.set_xticks(np.arange(len(conds)) + width * (len(runs) - 1) / 2, conds, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall@1")
    ax.set_title("Recall@1 by condition")
    ax.legend()
    paths.append(_save(fig, out / "recall_by_condition.png"))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for s in runs:
        pr = s["overall"]["pr_curve"]
        a1.plot(pr["recall"], pr["precision"], label=f"{s['label']} (GAP {val(s['overall']['GAP']):.2f})")
        fa = s["overall"]["false_alarm"]
        a2.plot(fa["threshold"], [val(v) for v in fa["rate"]], label=f"{s['label']}: false alarms")
        a2.plot(fa["threshold"], [val(v) for v in fa["true_detection_rate"]], ls="--", label=f"{s['label']}: correct top-1 >= t")
    a1.set_xlabel("recall")
    a1.set_ylabel("precision")
    a1.set_title("Top-1 answers ranked by confidence")
    a1.legend(fontsize=7)
    a2.set_xlabel("decision threshold")
    a2.set_title("False alarms on distractors vs detections")
    a2.legend(fontsize=7)
    paths.append(_save(fig, out / "pr_and_false_alarms.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_table(report: Mapping[str, Any], section: str = "by_condition") -> str:
    """A plain-text table of one breakdown for every run (for the CLI and the notebook)."""
    lines = []
    for s in report["runs"]:
        lines.append(f"[{s['label']}] {s['config']['model']}")
        lines.append(f"  {'':<24} {'n':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'mAP':>6} {'GAP':>6} {'distr.max':>9}")
        for name, m in s[section].items():
            def f(x: Any) -> str:
                return "   -  " if x is None else f"{x:6.3f}"
            lines.append(f"  {name:<24} {m['queries']:>5} {f(m['recall@1'])} {f(m['recall@5'])} {f(m['recall@10'])} "
                         f"{f(m['mAP'])} {f(m['GAP'])} {f(m['distractor_top1_max']):>9}")
    return "\n".join(lines)
