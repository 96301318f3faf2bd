"""Recall metrics against hand-computed cases: ranks and ties, recall@k, mAP, MRR, GAP, PR curve, false alarms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from artefact.index.bench import metrics


def test_rank_of_positions_and_absence() -> None:
    assert metrics.rank_of(["a", "b", "c"], "a") == 1
    assert metrics.rank_of(["a", "b", "c"], "c") == 3
    assert metrics.rank_of(["a", "b", "c"], "z") is None
    assert metrics.rank_of(["a", "b", "c"], None) is None  # a distractor has no true object
    assert metrics.rank_of([], "a") is None


def test_rank_of_ties_are_pessimistic() -> None:
    # b and c tie at 0.8: whichever order they came back in, the true one counts second of the two.
    assert metrics.rank_of(["a", "b", "c"], "b", [0.9, 0.8, 0.8]) == 3
    assert metrics.rank_of(["a", "b", "c"], "c", [0.9, 0.8, 0.8]) == 3
    assert metrics.rank_of(["a", "b"], "a", [0.5, 0.5]) == 2
    assert metrics.rank_of(["a", "b", "c"], "a", [0.9, 0.8, 0.8]) == 1  # no tie with the first


# -- recall, mAP, MRR --------------------------------------------------------------------
def test_recall_at_k_hand_computed() -> None:
    ranks = [1, 3, None, 12]
    assert metrics.recall_at_k(ranks, 1) == 0.25
    assert metrics.recall_at_k(ranks, 5) == 0.5
    assert metrics.recall_at_k(ranks, 10) == 0.5
    # k larger than the catalogue: everything returned at all counts; never-returned never does.
    assert metrics.recall_at_k(ranks, 1000) == 0.75
    assert math.isnan(metrics.recall_at_k([], 5))
    with pytest.raises(ValueError):
        metrics.recall_at_k(ranks, 0)


def test_map_and_mrr_hand_computed() -> None:
    ranks = [1, 2, None, 4]
    assert metrics.mean_average_precision(ranks) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert metrics.mean_reciprocal_rank(ranks) == pytest.approx(0.4375)
    assert metrics.mean_average_precision([None, None]) == 0.0
    assert math.isnan(metrics.mean_reciprocal_rank([]))


def test_average_precision_several_relevant() -> None:
    assert metrics.average_precision([3]) == pytest.approx(1 / 3)
    assert metrics.average_precision([3, 1]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    # a third relevant item never retrieved contributes precision 0
    assert metrics.average_precision([1, 3], n_relevant=3) == pytest.approx((1 + 2 / 3) / 3)
    assert math.isnan(metrics.average_precision([]))


# -- GAP, PR curve, false alarms, latency -------------------------------------------------
def test_gap_hand_computed_with_distractor() -> None:
    # 4 queries: 3 with a true object (M=3), the last a distractor (always wrong).
    scores = [0.9, 0.8, 0.7, 0.6]
    correct = [True, False, True, False]
    # P(1)=1, P(2)=1/2, P(3)=2/3, P(4)=1/2; GAP = (1 + 2/3) / 3
    assert metrics.gap(scores, correct, 3) == pytest.approx((1 + 2 / 3) / 3)
    # order of input does not matter
    assert metrics.gap(scores[::-1], correct[::-1], 3) == pytest.approx((1 + 2 / 3) / 3)


def test_gap_confident_distractor_costs_more_than_a_timid_one() -> None:
    timid = metrics.gap([0.9, 0.8, 0.1], [True, True, False], 2)
    bold = metrics.gap([0.9, 0.8, 0.95], [True, True, False], 2)
    assert timid == 1.0
    assert bold == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_gap_ties_and_edge_cases() -> None:
    # a wrong answer tied with a right one is counted first
    assert metrics.gap([0.8, 0.8], [True, False], 1) == 0.5
    assert metrics.gap([0.8, 0.8], [False, True], 1) == 0.5
    assert math.isnan(metrics.gap([0.3], [False], 0))  # only distractors: undefined
    assert metrics.gap([], [], 2) == 0.0
    # a query whose true object is in the catalogue but never answered still counts in M
    assert metrics.gap([0.9], [True], 2) == 0.5


def test_precision_recall_curve_hand_computed() -> None:
    pr = metrics.precision_recall_curve([0.9, 0.8, 0.8, 0.5], [True, True, False, False], 3)
    assert pr["threshold"] == [0.9, 0.8, 0.5]
    assert pr["precision"] == pytest.approx([1.0, 2 / 3, 0.5])
    assert pr["recall"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert metrics.precision_recall_curve([], [], 3)["threshold"] == []


def test_false_alarm_rate_and_latency() -> None:
    assert metrics.false_alarm_rate([0.2, 0.5, 0.7], [0.5, 0.6, 0.8]) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert all(math.isnan(x) for x in metrics.false_alarm_rate([], [0.5]))
    lat = metrics.latency_percentiles([10, 20, 30, 40])
    assert lat["p50"] == 25 and lat["mean"] == 25 and lat["p99"] == pytest.approx(39.7)


def _qr(expected: str | None, ids: list[str], scores: list[float], condition: str = "c") -> metrics.QueryResult:
    return metrics.QueryResult(["x.jpg"], expected, condition, 1, "coin" if expected else "distractor", ids, scores,
                         metrics.rank_of(ids, expected, scores), 10.0)


def test_summarise_and_breakdown() -> None:
    results = [
        _qr("a", ["a", "b"], [0.9, 0.3]),
        _qr("b", ["a", "b"], [0.7, 0.6], condition="d"),
        _qr(None, ["a", "b"], [0.8, 0.1]),  # distractor scoring 0.8
    ]
    s = metrics.summarise(results, thresholds=[0.5, 0.85])
    assert (s["queries"], s["with_true_object"], s["distractors"]) == (3, 2, 1)
    assert s["recall@1"] == 0.5 and s["recall@5"] == 1.0
    assert s["mAP"] == pytest.approx(0.75)
    # top-1: 0.9 right, 0.8 wrong (distractor), 0.7 wrong -> GAP = (1/2) * 1
    assert s["GAP"] == pytest.approx(0.5)
    assert s["false_alarm"]["rate"] == [1.0, 0.0]
    assert s["score_true_match"] == [0.9, 0.6]
    by = metrics.breakdown(results, "condition")
    assert by["c"]["recall@1"] == 1.0 and by["d"]["recall@1"] == 0.0
