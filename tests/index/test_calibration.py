"""Calibration: monotone probabilities whose thresholds keep their stated precision on new data."""

from __future__ import annotations

import numpy as np
import pytest

from artefact.index.calibration import NO_MATCH, POSSIBLE, STRONG, Calibration, fit


def _synthetic(n_queries: int, seed: int) -> tuple[list[tuple[float, int, int]], list[int]]:
    """Each query: one true candidate and four wrong ones, with overlapping score distributions."""
    rng = np.random.default_rng(seed)
    samples, groups = [], []
    for q in range(n_queries):
        samples.append((float(rng.normal(0.62, 0.12)), int(rng.poisson(25)), 1))
        groups.append(q)
        for _ in range(4):
            samples.append((float(rng.normal(0.38, 0.10)), int(rng.poisson(1.5)), 0))
            groups.append(q)
    return samples, groups


@pytest.mark.parametrize("uses_inliers", [True, False])
def test_probability_is_monotone_in_score_and_inliers(uses_inliers: bool) -> None:
    samples, groups = _synthetic(300, seed=1)
    cal = fit(samples, uses_inliers=uses_inliers, groups=groups)
    scores = np.linspace(-0.2, 1.0, 50)
    probs = [cal.probability(s, 10) for s in scores]
    assert all(b >= a for a, b in zip(probs, probs[1:]))
    by_inliers = [cal.probability(0.5, n) for n in range(0, 200, 5)]
    assert all(b >= a for a, b in zip(by_inliers, by_inliers[1:]))
    if not uses_inliers:
        assert by_inliers[0] == by_inliers[-1]


def test_negative_weight_is_dropped_to_stay_monotone() -> None:
    rng = np.random.default_rng(3)
    # Among verified candidates, inliers here are anti-correlated with truth: a free fit
    # would give them a negative weight.
    samples = [(float(rng.normal(0.7, 0.1)), int(rng.integers(8, 15)), 1) for _ in range(200)]
    samples += [(float(rng.normal(0.4, 0.1)), int(rng.integers(15, 60)), 0) for _ in range(200)]
    samples += [(float(rng.normal(0.3, 0.1)), 0, 0) for _ in range(200)]
    samples += [(float(rng.normal(0.6, 0.1)), 0, 1) for _ in range(50)]
    cal = fit(samples, uses_inliers=True)
    assert cal.verified_weights[2] == 0.0 and cal.verified_weights[1] > 0
    by_inliers = [cal.probability(0.5, n) for n in range(0, 100)]
    assert all(b >= a for a, b in zip(by_inliers, by_inliers[1:]))


def _overlapping(n_queries: int, seed: int) -> tuple[list[tuple[float, int, int]], list[int]]:
    """Like `_synthetic`, but true and wrong candidates overlap in similarity and in verified
    correspondences, so no threshold separates them and the two levels must differ."""
    rng = np.random.default_rng(seed)
    samples, groups = [], []
    for q in range(n_queries):
        samples.append((float(rng.normal(0.60, 0.12)), int(rng.poisson(9)), 1))
        groups.append(q)
        for _ in range(4):
            samples.append((float(rng.normal(0.42, 0.10)), int(rng.poisson(3)), 0))
            groups.append(q)
    return samples, groups


@pytest.mark.parametrize("uses_inliers", [True, False])
def test_thresholds_keep_their_target_precision_on_fresh_overlapping_data(uses_inliers: bool) -> None:
    from scipy.stats import binomtest

    from artefact.index.calibration import TARGET_PRECISION

    samples, groups = _overlapping(1500, seed=2)
    cal = fit(samples, uses_inliers=uses_inliers, groups=groups)
    assert cal.samples["split"] == 1 and cal.samples["held_out"] > 0
    assert cal.strong > cal.possible, (cal.strong, cal.possible)  # the "possible" level is a level of its own
    fresh, _ = _overlapping(3000, seed=99)  # data the fit never saw
    accepted_n = {}
    for level, threshold in (("strong", cal.strong), ("possible", cal.possible)):
        accepted = [lab for s, i, lab in fresh if cal.probability(s, i) >= threshold]
        n, tp = len(accepted), sum(accepted)
        accepted_n[level] = n
        # The target is kept unless fresh data rule it out: the 99% interval of the measured
        # precision (Wilson) must reach the target; n is large, so that bound is tight (~1 point).
        ci = binomtest(tp, n).proportion_ci(confidence_level=0.99, method="wilson")
        target = TARGET_PRECISION[level]
        assert ci.high >= target, (level, tp, n, ci, cal.precision)
        assert ci.high - tp / n < 0.02, "too few accepted for the bound to mean anything"
        # and the held-out figure stated in the calibration agrees with fresh data
        assert abs(tp / n - cal.precision[level]) <= 2 * (ci.high - ci.low), (level, tp / n, cal.precision)
    assert accepted_n["possible"] > accepted_n["strong"] > 0  # the lower level accepts more
    assert cal.recall["possible"] > cal.recall["strong"]


def test_builtin_calibration_states_where_its_figures_come_from() -> None:
    """The offline model's built-in verdicts are fitted on the bundled sample benchmark; the fit is not
    re-run here (an EfficientNet ingest of 376 queries takes minutes): the figures must say where they
    come from and keep their stated targets, and `index stats` shows that source (test_cli_commands).
    Their precision is re-measured on a benchmark of another seed in test_builtin_calibration_fresh."""
    from artefact.index.calibration import BUILTIN, BUILTIN_ADAPTED, TARGET_PRECISION

    fits = [(key[1], "376 queries", cal) for key, cal in BUILTIN.items()]
    fits += [(key[1], "375 queries", cal) for key, cal in BUILTIN_ADAPTED.items()]
    for uses_inliers, queries, cal in fits:
        assert "bench-build --seed 101" in cal.source and queries in cal.source
        assert cal.uses_inliers is uses_inliers and cal.samples["split"] == 1
        assert cal.strong > cal.possible
        assert cal.precision["strong"] >= TARGET_PRECISION["strong"] - 0.01
        assert cal.recall["possible"] >= cal.recall["strong"]


def test_verdicts_follow_the_thresholds() -> None:
    cal = Calibration(weights=[-10.0, 10.0], uses_inliers=True, strong=0.9, possible=0.5,
                      verified_weights=[-2.0, 1.0, 1.0])
    assert cal.probability(0.5, 30) > cal.probability(0.5, 0)
    assert cal.verdict(0.95) == STRONG
    assert cal.verdict(0.6) == POSSIBLE
    assert cal.verdict(0.2) == NO_MATCH
    again = Calibration.from_json(cal.to_json())
    assert again == cal


def test_fit_refuses_one_sided_data() -> None:
    with pytest.raises(ValueError):
        fit([(0.5, 3, 1), (0.7, 9, 1)], uses_inliers=True)


def test_isotonic_piece_is_monotone_and_matches_true_rates() -> None:
    from artefact.index.calibration import isotonic_points

    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, 20000) < x**2).astype(float)  # true P(y=1 | x) = x^2
    points = isotonic_points(x, y)
    ps = [p for _, p in points]
    assert all(b >= a for a, b in zip(ps, ps[1:]))
    xs, _ = zip(*points)
    for q in (0.2, 0.5, 0.8, 0.95):
        assert abs(float(np.interp(q, xs, ps)) - q**2) < 0.06, q
    # Shrinkage: a lone positive at the top does not become certainty.
    lone = isotonic_points(np.array([0.1, 0.2, 0.3, 0.9]), np.array([0.0, 0.0, 0.0, 1.0]))
    assert lone[-1][1] < 1.0
