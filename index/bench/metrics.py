"""Ranking metrics as pure numpy functions (no I/O), and the summaries they make of query results.

Metric conventions (tested in tests/index/bench/test_evaluation.py):

* A query has one true object (`expected_id`) or none (a *distractor*: an object
  not in the catalogue). Ranks are 1-based; `None` means the true object was not
  returned at all.
* Ranks are positions in the order the service answers in
  (`artefact.index.search.answer_order`, applied by the runner): an officer
  sees that order, ties broken as the service breaks them (by similarity under
  a shared calibrated probability). `rank_of` with bare `scores` instead counts
  ties **pessimistically** (the true object after every object scoring the
  same), for rankings that come with nothing but scores. In GAP and the
  precision/recall curve, at equal confidence wrong answers are counted before
  right ones, so those can never be improved by a lucky tie order.
* Calibrated-probability metrics are reported apart from the ranking ones
  (`verdict_metrics`): GAP over the top answer's probability, and for each
  verdict level (strong; strong or possible = "close") its precision over all
  queries whose top answer got it, its recall over queries with a true object,
  and its false-alarm rate over distractors.
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

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

KS = (1, 5, 10)
PERCENTILES = (50, 90, 95, 99)


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


# -- summaries of query results -----------------------------------------------------------
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
    similarities: list[float] = field(default_factory=list)  # cosine similarity of each answer
    verdicts: list[str] = field(default_factory=list)  # the service's verdict of each answer
    calibrated: bool = False  # scores are calibrated probabilities

    @property
    def top1_score(self) -> float | None:
        return self.scores[0] if self.scores else None

    @property
    def top1_correct(self) -> bool:
        return self.rank == 1


STRONG_VERDICT, POSSIBLE_VERDICT = "strong match", "possible match"  # as artefact.index.calibration words them


def verdict_metrics(results: Sequence[QueryResult]) -> dict[str, Any]:
    """Precision, recall and false alarms of the top answer's verdict, per level (strong; close = strong or possible).

    Precision is over every query (distractors included) whose top answer got the
    level; recall over queries with a true object (top answer right and at the level);
    false alarms over distractors whose top answer got the level.
    """
    usable = [r for r in results if r.error is None]
    levels = {"strong": {STRONG_VERDICT}, "close": {STRONG_VERDICT, POSSIBLE_VERDICT}}
    out: dict[str, Any] = {}
    for name, accepted in levels.items():
        called = [r for r in usable if r.verdicts and r.verdicts[0] in accepted]
        true_q = [r for r in usable if r.expected_id is not None]
        distract = [r for r in usable if r.expected_id is None]
        hits = sum(r.top1_correct for r in called)
        out[name] = {
            "called": len(called),
            "precision": hits / len(called) if called else float("nan"),
            "recall": hits / len(true_q) if true_q else float("nan"),
            "false_alarm": sum(r.expected_id is None for r in called) / len(distract) if distract else float("nan"),
        }
    return out


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
        "calibrated": any(r.calibrated for r in usable),
        "verdicts": verdict_metrics(usable),
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
        out[value]["strong_recall"] = s["verdicts"]["strong"]["recall"]
        d = s["score_distractor_top1"]
        out[value]["distractor_top1_max"] = max(d) if d else float("nan")
    return out
