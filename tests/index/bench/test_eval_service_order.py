"""`artefact eval` ranks in the service's own answer order and reports calibrated verdicts apart from ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from artefact.index.bench import metrics, queries, runner
from artefact.index.calibration import NO_MATCH, STRONG, Calibration
from artefact.index.catalogue import SearchFilters
from artefact.index.errors import ManifestError
from artefact.index.records import ImageRecord, ObjectRecord
from artefact.index.search import ObjectMatch, SearchResult, answer_order

FLOOR = Calibration(weights=[0.0, 0.0], uses_inliers=False, strong=0.9, possible=0.5)


def match(object_id: str, score: float, probability: float, verdict: str = NO_MATCH) -> ObjectMatch:
    image = ImageRecord(1, object_id, f"{object_id}.jpg", "0" * 64, 1, 1, 1)
    return ObjectMatch(ObjectRecord(object_id), score, image, probability=probability, verdict=verdict)


def test_tied_probabilities_rank_as_the_service_orders_them() -> None:
    """Three candidates share the calibration's floor probability: the service orders them by
    similarity, so the true object (most similar) is the first answer an officer sees."""
    returned = [match("A", 0.60, 0.011), match("B", 0.65, 0.011), match("TRUE", 0.70, 0.011)]
    result = SearchResult(returned, 0.5, SearchFilters(), calibration=FLOOR)
    r = runner.query_result(queries.Query([Path("q.jpg")], "TRUE"), result, 12.0, None, "vessel")
    assert r.ranked_ids == ["TRUE", "B", "A"] == [m.record.object_id for m in answer_order(returned, FLOOR, False)]
    assert r.scores == [0.011] * 3  # tied probabilities: a pessimistic rank would have said 3
    assert r.rank == 1 and r.similarities == [0.70, 0.65, 0.60]
    # Calibrated metrics stay apart: the top answer is right but was not called a match.
    v = metrics.verdict_metrics([r])
    assert v["strong"]["called"] == 0 and v["strong"]["recall"] == 0.0
    assert metrics.summarise([r])["recall@1"] == 1.0


def test_verdict_metrics_precision_recall_and_false_alarms() -> None:
    def result(expected: str | None, top: str, verdict: str) -> metrics.QueryResult:
        rank = 1 if top == expected else None
        return metrics.QueryResult(["q"], expected, "", 0, "", [top], [0.9], rank, 1.0, verdicts=[verdict])

    rs = [result("A", "A", STRONG), result("B", "B", STRONG), result("C", "X", STRONG), result("D", "D", "possible match"),
          result(None, "Y", STRONG), result(None, "Z", NO_MATCH)]
    v = metrics.verdict_metrics(rs)
    assert v["strong"] == {"called": 4, "precision": 0.5, "recall": 0.5, "false_alarm": 0.5}
    assert v["close"]["called"] == 5 and v["close"]["recall"] == 0.75 and v["close"]["precision"] == 0.6


def test_query_lists_need_the_expected_id_column(tmp_path: Path) -> None:
    (tmp_path / "no_expected.csv").write_text("query,condition\na.jpg,rotation\n")
    with pytest.raises(ManifestError, match="`expected_id` column"):
        queries.read_queries(tmp_path / "no_expected.csv")
    (tmp_path / "no_expected.jsonl").write_text('{"query": "a.jpg"}\n')
    with pytest.raises(ManifestError, match="line 1: no `expected_id`"):
        queries.read_queries(tmp_path / "no_expected.jsonl")
    (tmp_path / "distractor.jsonl").write_text('{"query": "a.jpg", "expected_id": null}\n')
    assert queries.read_queries(tmp_path / "distractor.jsonl")[0].is_distractor


def test_unknown_expected_ids_are_refused_by_name() -> None:
    qs = [queries.Query([Path("a.jpg")], "KNOWN"), queries.Query([Path("b.jpg")], "GONE-2"),
          queries.Query([Path("c.jpg")], "GONE-1"), queries.Query([Path("d.jpg")], None)]
    with pytest.raises(ManifestError, match="2 expected id.*GONE-1, GONE-2"):
        queries.check_expected_ids(qs, ["KNOWN"])
    queries.check_expected_ids(qs[:1] + qs[3:], ["KNOWN"])  # known ids and distractors pass
