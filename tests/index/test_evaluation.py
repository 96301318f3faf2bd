"""Recall metrics against hand-computed cases, the query list format, the runner end to end, and the notebook."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from artefact.embed.errors import ManifestError
from artefact.index import benchmark_builder as B
from artefact.index import evaluation as E
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES

REPO = Path(__file__).resolve().parents[2]


# -- ranks and ties ---------------------------------------------------------------
def test_rank_of_positions_and_absence() -> None:
    assert E.rank_of(["a", "b", "c"], "a") == 1
    assert E.rank_of(["a", "b", "c"], "c") == 3
    assert E.rank_of(["a", "b", "c"], "z") is None
    assert E.rank_of(["a", "b", "c"], None) is None  # a distractor has no true object
    assert E.rank_of([], "a") is None


def test_rank_of_ties_are_pessimistic() -> None:
    # b and c tie at 0.8: whichever order they came back in, the true one counts second of the two.
    assert E.rank_of(["a", "b", "c"], "b", [0.9, 0.8, 0.8]) == 3
    assert E.rank_of(["a", "b", "c"], "c", [0.9, 0.8, 0.8]) == 3
    assert E.rank_of(["a", "b"], "a", [0.5, 0.5]) == 2
    assert E.rank_of(["a", "b", "c"], "a", [0.9, 0.8, 0.8]) == 1  # no tie with the first


# -- recall, mAP, MRR --------------------------------------------------------------------
def test_recall_at_k_hand_computed() -> None:
    ranks = [1, 3, None, 12]
    assert E.recall_at_k(ranks, 1) == 0.25
    assert E.recall_at_k(ranks, 5) == 0.5
    assert E.recall_at_k(ranks, 10) == 0.5
    # k larger than the catalogue: everything returned at all counts; never-returned never does.
    assert E.recall_at_k(ranks, 1000) == 0.75
    assert math.isnan(E.recall_at_k([], 5))
    with pytest.raises(ValueError):
        E.recall_at_k(ranks, 0)


def test_map_and_mrr_hand_computed() -> None:
    ranks = [1, 2, None, 4]
    assert E.mean_average_precision(ranks) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert E.mean_reciprocal_rank(ranks) == pytest.approx(0.4375)
    assert E.mean_average_precision([None, None]) == 0.0
    assert math.isnan(E.mean_reciprocal_rank([]))


def test_average_precision_several_relevant() -> None:
    assert E.average_precision([3]) == pytest.approx(1 / 3)
    assert E.average_precision([3, 1]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    # a third relevant item never retrieved contributes precision 0
    assert E.average_precision([1, 3], n_relevant=3) == pytest.approx((1 + 2 / 3) / 3)
    assert math.isnan(E.average_precision([]))


# -- GAP, PR curve, false alarms, latency -------------------------------------------------
def test_gap_hand_computed_with_distractor() -> None:
    # 4 queries: 3 with a true object (M=3), the last a distractor (always wrong).
    scores = [0.9, 0.8, 0.7, 0.6]
    correct = [True, False, True, False]
    # P(1)=1, P(2)=1/2, P(3)=2/3, P(4)=1/2; GAP = (1 + 2/3) / 3
    assert E.gap(scores, correct, 3) == pytest.approx((1 + 2 / 3) / 3)
    # order of input does not matter
    assert E.gap(scores[::-1], correct[::-1], 3) == pytest.approx((1 + 2 / 3) / 3)


def test_gap_confident_distractor_costs_more_than_a_timid_one() -> None:
    timid = E.gap([0.9, 0.8, 0.1], [True, True, False], 2)
    bold = E.gap([0.9, 0.8, 0.95], [True, True, False], 2)
    assert timid == 1.0
    assert bold == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_gap_ties_and_edge_cases() -> None:
    # a wrong answer tied with a right one is counted first
    assert E.gap([0.8, 0.8], [True, False], 1) == 0.5
    assert E.gap([0.8, 0.8], [False, True], 1) == 0.5
    assert math.isnan(E.gap([0.3], [False], 0))  # only distractors: undefined
    assert E.gap([], [], 2) == 0.0
    # a query whose true object is in the catalogue but never answered still counts in M
    assert E.gap([0.9], [True], 2) == 0.5


def test_precision_recall_curve_hand_computed() -> None:
    pr = E.precision_recall_curve([0.9, 0.8, 0.8, 0.5], [True, True, False, False], 3)
    assert pr["threshold"] == [0.9, 0.8, 0.5]
    assert pr["precision"] == pytest.approx([1.0, 2 / 3, 0.5])
    assert pr["recall"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert E.precision_recall_curve([], [], 3)["threshold"] == []


def test_false_alarm_rate_and_latency() -> None:
    assert E.false_alarm_rate([0.2, 0.5, 0.7], [0.5, 0.6, 0.8]) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert all(math.isnan(x) for x in E.false_alarm_rate([], [0.5]))
    lat = E.latency_percentiles([10, 20, 30, 40])
    assert lat["p50"] == 25 and lat["mean"] == 25 and lat["p99"] == pytest.approx(39.7)


def _qr(expected: str | None, ids: list[str], scores: list[float], condition: str = "c") -> E.QueryResult:
    return E.QueryResult(["x.jpg"], expected, condition, 1, "coin" if expected else E.DISTRACTOR, ids, scores,
                         E.rank_of(ids, expected, scores), 10.0)


def test_summarise_and_breakdown() -> None:
    results = [
        _qr("a", ["a", "b"], [0.9, 0.3]),
        _qr("b", ["a", "b"], [0.7, 0.6], condition="d"),
        _qr(None, ["a", "b"], [0.8, 0.1]),  # distractor scoring 0.8
    ]
    s = E.summarise(results, thresholds=[0.5, 0.85])
    assert (s["queries"], s["with_true_object"], s["distractors"]) == (3, 2, 1)
    assert s["recall@1"] == 0.5 and s["recall@5"] == 1.0
    assert s["mAP"] == pytest.approx(0.75)
    # top-1: 0.9 right, 0.8 wrong (distractor), 0.7 wrong -> GAP = (1/2) * 1
    assert s["GAP"] == pytest.approx(0.5)
    assert s["false_alarm"]["rate"] == [1.0, 0.0]
    assert s["score_true_match"] == [0.9, 0.6]
    by = E.breakdown(results, "condition")
    assert by["c"]["recall@1"] == 1.0 and by["d"]["recall@1"] == 0.0


# -- query lists ---------------------------------------------------------------------------
def test_read_queries_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text("query,expected_id,condition,severity\na.jpg;b.jpg,X-1,rotation,2\nc.jpg,,,\n")
    qs = E.read_queries(tmp_path / "q.csv")
    assert qs[0].photos == [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    assert (qs[0].expected_id, qs[0].condition, qs[0].severity) == ("X-1", "rotation", 2)
    assert qs[1].is_distractor and qs[1].severity == 0
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": ["a.jpg"], "expected_id": "X-1"}) + "\n\n"
                                      + json.dumps({"query": "c.jpg", "expected_id": None}) + "\n")
    qj = E.read_queries(tmp_path / "q.jsonl")
    assert qj[0].photos == [tmp_path / "a.jpg"] and qj[1].expected_id is None
    E.write_queries(tmp_path / "round.csv", [E.Query([Path("a.jpg")], "X-1", "jpeg", 3), E.Query([Path("c.jpg")], None)])
    back = E.read_queries(tmp_path / "round.csv")
    assert [(q.expected_id, q.condition, q.severity) for q in back] == [("X-1", "jpeg", 3), (None, "", 0)]


def test_read_queries_refuses_bad_lists(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        E.read_queries(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("photo,expected\nx.jpg,1\n")
    with pytest.raises(ManifestError, match="query"):
        E.read_queries(tmp_path / "bad.csv")
    (tmp_path / "sev.csv").write_text("query,expected_id,severity\nx.jpg,A,high\n")
    with pytest.raises(ManifestError, match="severity"):
        E.read_queries(tmp_path / "sev.csv")
    (tmp_path / "q.txt").write_text("x")
    with pytest.raises(ManifestError):
        E.read_queries(tmp_path / "q.txt")


def test_sample_queries_csv_reads() -> None:
    qs = E.read_queries(REPO / "data" / "sample" / "queries" / "queries.csv")
    assert len(qs) == 5 and sum(q.is_distractor for q in qs) == 1
    assert all(p.is_file() for q in qs for p in q.photos)


# -- runner end to end (tiny model) ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory, tiny_embedder) -> tuple[Library, B.Benchmark]:
    root = tmp_path_factory.mktemp("bench")
    pairs = root / "pairs-src"
    pairs.mkdir()
    from PIL import Image

    src = Image.open(SAMPLE_IMAGES / "SMP-ARCH-01" / "1.jpg").convert("RGB")
    src.save(pairs / "box.png")
    src.rotate(10).save(pairs / "box_in_scene.png")
    spec = B.BenchmarkSpec(conditions=("rotation", "jpeg"), severities=(1, 3), objects_per_condition=3, seed=7,
                           skimage_distractors=False, distractor_dir=SAMPLE_IMAGES.parent / "queries", pairs_dir=pairs)
    bench = B.build_benchmark(root / "bench", SAMPLE_CSV, SAMPLE_IMAGES, spec)
    library = Library(root / "home")
    B.index_benchmark(library, tiny_embedder, SAMPLE_CSV, SAMPLE_IMAGES, bench, workers=0)
    return library, bench


def test_evaluate_end_to_end_writes_report_and_plots(tiny_bench, tiny_embedder, tmp_path: Path) -> None:
    library, bench = tiny_bench
    queries = bench.queries()
    assert bench.counts["pairs"] == 1 and library.catalogue.counts()["objects"] == 28
    import inspect

    from artefact.index.search import search

    # batched evaluation ranks by embedding alone: compare with search() without re-ranking
    options = {"rerank": 0} if "rerank" in inspect.signature(search).parameters else {}
    single = E.evaluate(library, tiny_embedder, queries, label="tiny", search_options=options)
    batched = E.evaluate(library, tiny_embedder, queries, label="tiny-batched", batch_size=8)
    assert len(single.results) == len(queries) and not any(r.error for r in single.results)
    # batching changes speed, not answers
    assert [r.ranked_ids[:3] for r in single.results] == [r.ranked_ids[:3] for r in batched.results]
    for r in single.results:
        assert len(r.ranked_ids) == 28  # whole catalogue ranked: k > catalogue is fine
        if r.expected_id is not None:
            assert r.rank is not None
    report = E.write_report(tmp_path / "out", [single, batched])
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [row["label"] for row in on_disk["comparison"]] == ["tiny", "tiny-batched"]
    assert set(on_disk["runs"][0]["by_condition"]) >= {"rotation", "jpeg", "second_photo", "plain"}
    assert "photo pair" in on_disk["runs"][0]["by_object_type"]
    for name in ("recall_at_k.png", "score_distributions.png", "recall_by_condition.png", "pr_and_false_alarms.png"):
        assert name in report["files"]
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rotation" in E.format_table(on_disk)


def test_evaluate_records_a_broken_query_photo(tiny_bench, tiny_embedder, tmp_path: Path) -> None:
    library, _ = tiny_bench
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    for batch in (1, 4):
        run = E.evaluate(library, tiny_embedder, [E.Query([bad], "SMP-COIN-01")], batch_size=batch)
        assert run.results[0].error and run.results[0].rank is None
        assert run.summary()["overall"]["errors"] == 1


def test_catalogue_photo_finds_itself_with_offline_model(offline_embedder, tmp_path: Path) -> None:
    """Sanity check with real weights: an untouched catalogue photo ranks its object first."""
    library = Library(tmp_path / "home")
    ingest_manifest(library, offline_embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
    qs = [E.Query([SAMPLE_IMAGES / oid / "1.jpg"], oid) for oid in ("SMP-PAINT-01", "SMP-ARCH-01", "SMP-COIN-05")]
    s = E.evaluate(library, offline_embedder, qs, batch_size=3).summary()["overall"]
    assert s["recall@1"] == 1.0 and s["mAP"] == 1.0


# -- the notebook ------------------------------------------------------------------------------
def test_notebook_executes_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = REPO / "notebooks" / "evaluate_recall.ipynb"
    nb = nbformat.read(path, as_version=4)
    # kernel "python3" is resolved to this interpreter (jupyter_client maps argv "python" to sys.executable)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    monkeypatch.setenv("ARTEFACT_NOTEBOOK_OUT", str(tmp_path))  # the kernel inherits the environment
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "recall@1" in outputs
    assert (tmp_path / "report" / "report.json").is_file()


# -- benchmark builder -------------------------------------------------------------------------
def test_benchmark_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    spec = B.BenchmarkSpec(conditions=("clutter", "noise"), severities=(2,), objects_per_condition=2, seed=5,
                           skimage_distractors=False, distractor_dir=SAMPLE_IMAGES.parent / "queries", use_pairs=False)
    a = B.build_benchmark(tmp_path / "a", SAMPLE_CSV, SAMPLE_IMAGES, spec)
    b = B.build_benchmark(tmp_path / "b", SAMPLE_CSV, SAMPLE_IMAGES, spec)
    assert a.queries_path.read_text() == b.queries_path.read_text()
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*.jpg"))
    assert files and all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)
    qs = a.queries()
    assert sum(not q.is_distractor for q in qs) == 2 * 2 and all(p.is_file() for q in qs for p in q.photos)
    assert {q.condition for q in qs if q.is_distractor} >= {"plain"}
    with pytest.raises(ValueError, match="unknown condition"):
        B.build_benchmark(tmp_path / "c", SAMPLE_CSV, SAMPLE_IMAGES, B.BenchmarkSpec(conditions=("fog",)))
