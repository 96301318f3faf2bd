"""The evaluation runner end to end on a tiny model: report and plots, broken photos, batching, calibration samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artefact.index.bench import builder as B
from artefact.index.bench import queries, report, runner
from artefact.index.bench.calibration_samples import collect_samples
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES


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


def _same_up_to_ties(a, b, n: int, tol: float = 1e-4) -> bool:
    """Top n equal place by place, except where the two objects at a place are tied in score."""
    score_a = dict(zip(a.ranked_ids, a.scores))
    score_b = dict(zip(b.ranked_ids, b.scores))
    for x, y in zip(a.ranked_ids[:n], b.ranked_ids[:n]):
        if abs(score_a[x] - score_b[x]) > tol:
            return False  # batching moved a score: a real difference
        if x != y and (abs(score_a[x] - score_a[y]) > tol or abs(score_b[x] - score_b[y]) > tol):
            return False
    return True


def test_evaluate_end_to_end_writes_report_and_plots(tiny_bench, tiny_embedder, tmp_path: Path) -> None:
    library, bench = tiny_bench
    bench_queries = bench.queries()
    assert bench.counts["pairs"] == 1 and library.catalogue.counts()["objects"] == 28
    import inspect

    from artefact.index.search import search

    # batched evaluation ranks by embedding alone: compare with search() without re-ranking
    options = {"rerank": 0} if "rerank" in inspect.signature(search).parameters else {}
    single = runner.evaluate(library, tiny_embedder, bench_queries, label="tiny", search_options=options)
    batched = runner.evaluate(library, tiny_embedder, bench_queries, label="tiny-batched", batch_size=8)
    assert len(single.results) == len(bench_queries) and not any(r.error for r in single.results)
    # batching changes speed, not answers: the same objects in the same order, except that objects
    # tied in score (PAIR-BOX is a copy of SMP-ARCH-01's photo) may trade places on float noise
    for a, b in zip(single.results, batched.results):
        assert a.ranked_ids[:3] == b.ranked_ids[:3] or _same_up_to_ties(a, b, 3), (a.ranked_ids[:3], b.ranked_ids[:3])
    for r in single.results:
        assert len(r.ranked_ids) == 28  # whole catalogue ranked: k > catalogue is fine
        if r.expected_id is not None:
            assert r.rank is not None
    written = report.write_report(tmp_path / "out", [single, batched])
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [row["label"] for row in on_disk["comparison"]] == ["tiny", "tiny-batched"]
    assert set(on_disk["runs"][0]["by_condition"]) >= {"rotation", "jpeg", "second_photo", "plain"}
    assert "photo pair" in on_disk["runs"][0]["by_object_type"]
    for name in ("recall_at_k.png", "score_distributions.png", "recall_by_condition.png", "pr_and_false_alarms.png"):
        assert name in written["files"]
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rotation" in report.format_table(on_disk)


def test_evaluate_records_a_broken_query_photo(tiny_bench, tiny_embedder, tmp_path: Path) -> None:
    library, _ = tiny_bench
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    for batch in (1, 4):
        run = runner.evaluate(library, tiny_embedder, [queries.Query([bad], "SMP-COIN-01")], batch_size=batch)
        assert run.results[0].error and run.results[0].rank is None
        assert run.summary()["overall"]["errors"] == 1


def test_catalogue_photo_finds_itself_with_offline_model(offline_embedder, tmp_path: Path) -> None:
    """Sanity check with real weights: an untouched catalogue photo ranks its object first."""
    library = Library(tmp_path / "home")
    ingest_manifest(library, offline_embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
    qs = [queries.Query([SAMPLE_IMAGES / oid / "1.jpg"], oid) for oid in ("SMP-PAINT-01", "SMP-ARCH-01", "SMP-COIN-05")]
    s = runner.evaluate(library, offline_embedder, qs, batch_size=3).summary()["overall"]
    assert s["recall@1"] == 1.0 and s["mAP"] == 1.0


def test_calibration_samples_label_each_querys_candidates(tiny_bench, tiny_embedder) -> None:
    library, _ = tiny_bench
    photo = SAMPLE_IMAGES / "SMP-PAINT-01" / "1.jpg"
    qs = [queries.Query([photo], "SMP-PAINT-01"), queries.Query([SAMPLE_IMAGES.parent / "queries" / "query-unrelated-chelsea-cat.jpg"], None)]
    samples, groups = collect_samples(library, tiny_embedder, qs, depth=4, rerank=0)
    assert len(samples) == 8 and groups == [0] * 4 + [1] * 4
    assert samples[0][2] == 1 and sum(label for _, _, label, _ in samples) == 1  # the catalogue photo finds itself first
    assert all(inliers is None for _, inliers, _, _ in samples)  # rerank=0: nothing was verified
    scores = [score for score, _, _, _ in samples[:4]]
    assert scores == sorted(scores, reverse=True)
    # each candidate's lead over the best other one, as the search reads it
    assert [m for *_, m in samples[:4]] == pytest.approx([scores[0] - scores[1]] + [s - scores[0] for s in scores[1:]])
    verified, _ = collect_samples(library, tiny_embedder, qs[:1], depth=4, rerank=4)
    assert all(inliers is not None for _, inliers, _, _ in verified)
