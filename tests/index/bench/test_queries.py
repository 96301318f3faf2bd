"""Query lists: CSV and JSON Lines read and written, bad lists refused with their line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artefact.index.bench import queries
from artefact.index.errors import ManifestError

REPO = Path(__file__).resolve().parents[3]


def test_read_queries_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text("query,expected_id,condition,severity\na.jpg;b.jpg,X-1,rotation,2\nc.jpg,,,\n")
    qs = queries.read_queries(tmp_path / "q.csv")
    assert qs[0].photos == [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    assert (qs[0].expected_id, qs[0].condition, qs[0].severity) == ("X-1", "rotation", 2)
    assert qs[1].is_distractor and qs[1].severity == 0
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": ["a.jpg"], "expected_id": "X-1"}) + "\n\n"
                                      + json.dumps({"query": "c.jpg", "expected_id": None}) + "\n")
    qj = queries.read_queries(tmp_path / "q.jsonl")
    assert qj[0].photos == [tmp_path / "a.jpg"] and qj[1].expected_id is None
    queries.write_queries(tmp_path / "round.csv", [queries.Query([Path("a.jpg")], "X-1", "jpeg", 3), queries.Query([Path("c.jpg")], None)])
    back = queries.read_queries(tmp_path / "round.csv")
    assert [(q.expected_id, q.condition, q.severity) for q in back] == [("X-1", "jpeg", 3), (None, "", 0)]


def test_read_queries_refuses_bad_lists(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        queries.read_queries(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("photo,expected\nx.jpg,1\n")
    with pytest.raises(ManifestError, match="query"):
        queries.read_queries(tmp_path / "bad.csv")
    (tmp_path / "sev.csv").write_text("query,expected_id,severity\nx.jpg,A,high\n")
    with pytest.raises(ManifestError, match="severity"):
        queries.read_queries(tmp_path / "sev.csv")
    (tmp_path / "q.txt").write_text("x")
    with pytest.raises(ManifestError):
        queries.read_queries(tmp_path / "q.txt")


def test_sample_queries_csv_reads() -> None:
    qs = queries.read_queries(REPO / "data" / "sample" / "queries" / "queries.csv")
    assert len(qs) == 5 and sum(q.is_distractor for q in qs) == 1
    assert all(p.is_file() for q in qs for p in q.photos)
