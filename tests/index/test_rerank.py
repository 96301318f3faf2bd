"""Second look in search: geometric re-ranking and calibrated verdicts on the real sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from artefact.index.calibration import NO_MATCH, POSSIBLE, STRONG, Calibration
from artefact.index.catalogue import SearchFilters
from artefact.index.library import Library
from artefact.index.search import search
from artefact.index.verification import MIN_MATCHES

from index_helpers import SAMPLE_QUERIES  # type: ignore[import-not-found]

COIN_QUERY = SAMPLE_QUERIES / "query-coin-SMP-COIN-18.jpg"
CAT_QUERY = SAMPLE_QUERIES / "query-unrelated-chelsea-cat.jpg"


@pytest.fixture(scope="module")
def sample_library(tmp_path_factory: pytest.TempPathFactory, offline_sample_home: Path) -> Library:
    home = tmp_path_factory.mktemp("rerank-home") / "home"
    shutil.copytree(offline_sample_home, home)  # the session's offline index, copied: tests here write to it
    library = Library(home)
    assert library.local_features == "sift"
    assert len(library.features) == 33  # in the feature store (the catalogue rows moved there)
    return library


def test_geometric_second_look_puts_the_small_coin_first(plain_sample_home: Path, plain_offline_embedder) -> None:
    # The plain offline model (indexes made before issue 14) ranks a look-alike coin first by similarity.
    with Library(plain_sample_home) as library:
        plain = search(library, plain_offline_embedder, [COIN_QUERY], k=5, rerank=0)
        ranked = search(library, plain_offline_embedder, [COIN_QUERY], k=5, rerank=20)
    assert plain.matches[0].record.object_id != "SMP-COIN-18"  # similarity alone: a look-alike coin on top
    assert ranked.matches[0].record.object_id == "SMP-COIN-18" and ranked.matches[0].verdict == STRONG
    assert (ranked.matches[0].inliers or 0) >= 15


def test_the_default_model_finds_the_small_coin_and_verifies_it(sample_library: Library, offline_embedder) -> None:
    # The adapted default already ranks it first by similarity; the second look adds the evidence.
    plain = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=0)
    ranked = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=20)
    assert plain.matches[0].record.object_id == "SMP-COIN-18" and plain.matches[0].verdict != STRONG
    assert ranked.matches[0].record.object_id == "SMP-COIN-18" and ranked.matches[0].verdict == STRONG
    assert ranked.reranked and "rerank" in ranked.timings_ms
    top = ranked.matches[0]
    assert top.inliers is not None and top.inliers >= 15
    assert all((m.inliers or 0) < MIN_MATCHES for m in ranked.matches[1:])
    assert top.evidence is not None and top.evidence.image.object_id == "SMP-COIN-18"
    assert top.evidence.verification.inliers == top.inliers


def test_unrelated_photo_verifies_against_nothing(sample_library: Library, offline_embedder) -> None:
    result = search(sample_library, offline_embedder, [CAT_QUERY], k=10, rerank=20)
    assert all(m.inliers == 0 for m in result.matches)
    assert result.no_match


def test_calibrated_verdicts_and_ordering(sample_library: Library, offline_embedder) -> None:
    # A hand-set calibration: verified correspondences weigh heavily.
    cal = Calibration(weights=[-8.0, 10.0], uses_inliers=True, strong=0.9, possible=0.5,
                      verified_weights=[-2.0, 0.0, 1.5])
    sample_library.set_calibration(cal)
    try:
        result = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=20)
        top = result.matches[0]
        assert top.record.object_id == "SMP-COIN-18"
        assert top.probability == pytest.approx(cal.probability(top.score, top.inliers))
        assert top.verdict == STRONG and result.verdict == STRONG
        probs = [m.probability for m in result.matches]
        assert probs == sorted(probs, reverse=True)
        assert all(m.verdict == NO_MATCH for m in result.matches[1:])
        assert "calibrated" in result.decision_rule()
        # An explicit similarity threshold overrides the calibration.
        overridden = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=20, threshold=0.3)
        assert overridden.calibration is None
        assert all(m.verdict == (POSSIBLE if m.score >= 0.3 else NO_MATCH) for m in overridden.matches)
    finally:
        with sample_library.catalogue.transaction():
            sample_library.catalogue.db.execute("DELETE FROM meta WHERE key LIKE 'calibration%'")


def test_stats_report_features_and_calibration(sample_library: Library) -> None:
    from dataclasses import asdict

    from artefact.index.calibration import BUILTIN_ADAPTED, TURNED3D_WEIGHTS

    stats = sample_library.stats()
    assert stats["local_features"] == "sift"
    assert set(stats["calibration"]) == {"with_verification", "similarity_only"}
    # Nothing fitted on this index: the offline default's built-in figures, value for value, with their source.
    assert sample_library.model is not None and sample_library.model.weights_sha256 == TURNED3D_WEIGHTS
    shown = stats["calibration"]
    assert shown["with_verification"] == asdict(BUILTIN_ADAPTED[(TURNED3D_WEIGHTS, True)])
    assert shown["similarity_only"] == asdict(BUILTIN_ADAPTED[(TURNED3D_WEIGHTS, False)])
    assert shown["with_verification"]["strong"] == pytest.approx(0.838)
    assert shown["with_verification"]["precision"] == {"strong": 0.9946, "possible": 0.8613}
    assert shown["with_verification"]["margin_weight"] == 2.0  # it reads the lead over the runner-up
    assert "bench-build --seed 101" in shown["similarity_only"]["source"]
    # A calibration fitted on the index replaces the built-in one in the stats, again value for value.
    cal = Calibration(weights=[-8.0, 10.0], uses_inliers=True, strong=0.9, possible=0.5, verified_weights=[-2.0, 0.0, 1.5],
                      precision={"strong": 0.991, "possible": 0.93}, recall={"strong": 0.4, "possible": 0.6})
    sample_library.set_calibration(cal)
    try:
        shown = sample_library.stats()["calibration"]
        assert shown["with_verification"] == asdict(cal)
        assert shown["with_verification"]["source"] == "fitted on this index"
        assert shown["similarity_only"] == asdict(BUILTIN_ADAPTED[(TURNED3D_WEIGHTS, False)])
    finally:
        with sample_library.catalogue.transaction():
            sample_library.catalogue.db.execute("DELETE FROM meta WHERE key LIKE 'calibration%'")


def test_verdicts_read_the_first_answers_lead_whatever_k(sample_library: Library, offline_embedder) -> None:
    """The probability reads each candidate's lead over the best other one, and the search keeps the
    runner-up to measure it even when asked for one answer: a verdict never depends on k."""
    cal = Calibration(weights=[-8.0, 10.0], uses_inliers=False, strong=0.9, possible=0.5, margin_weight=4.0,
                      precision={"strong": 0.99, "possible": 0.9}, recall={"strong": 0.5, "possible": 0.6})
    sample_library.set_calibration(cal)
    try:
        wide = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=0)
        one = search(sample_library, offline_embedder, [COIN_QUERY], k=1, rerank=0)
        s = [m.score for m in wide.matches]
        assert s[0] > s[1]
        assert wide.matches[0].probability == pytest.approx(cal.probability(s[0], None, s[0] - s[1]))
        assert wide.matches[1].probability == pytest.approx(cal.probability(s[1], None, s[1] - s[0]))
        assert wide.matches[0].probability > cal.probability(s[0])  # the lead counted
        assert len(one.matches) == 1 and one.matches[0].probability == pytest.approx(wide.matches[0].probability)
        assert one.matches[0].verdict == wide.matches[0].verdict
        # a pool of a few objects (here the three that are not coins) cannot tell a lead from chance:
        # similarity alone, the same figure as without a margin
        few = search(sample_library, offline_embedder, [COIN_QUERY], k=5, rerank=0,
                     filters=SearchFilters(object_type=("painting", "photograph", "architectural element")))
        assert 1 < len(few.matches) and all(m.margin == 0.0 for m in few.matches)
        assert few.matches[0].probability == pytest.approx(cal.probability(few.matches[0].score))
    finally:
        with sample_library.catalogue.transaction():
            sample_library.catalogue.db.execute("DELETE FROM meta WHERE key LIKE 'calibration%'")
