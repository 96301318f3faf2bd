"""Calibration: monotone probabilities whose thresholds keep their stated precision on new data."""

from __future__ import annotations

import numpy as np
import pytest

from artefact.index.calibration import NO_MATCH, POSSIBLE, STRONG, TARGET_PRECISION, Calibration, fit

TARGET_STRONG = TARGET_PRECISION["strong"]


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


def _turned(n_queries: int, seed: int, distractor_share: float = 0.3) -> tuple[list[tuple[float, None, int, float]], list[int]]:
    """Turned objects: a true object's similarity is low, about as low as a distractor query's best
    answer, yet it stands apart from the other candidates; a distractor's best answers are level."""
    from artefact.index.calibration import margins

    rng = np.random.default_rng(seed)
    samples, groups = [], []
    for q in range(n_queries):
        if rng.random() < distractor_share:
            scores = list(rng.normal(0.50, 0.04, 5))
        else:
            scores = [float(rng.normal(0.52, 0.05))] + list(rng.normal(0.36, 0.05, 5))
        labels = [0] * 5 if len(scores) == 5 else [1] + [0] * 5
        for s, lab, m in zip(scores, labels, margins(scores)):
            samples.append((float(s), None, lab, m))
            groups.append(q)
    return samples, groups


def test_margins_are_each_candidates_lead_over_the_best_other() -> None:
    from artefact.index.calibration import margins

    assert margins([0.5, 0.8, 0.6]) == pytest.approx([-0.3, 0.2, -0.2])
    assert margins([0.7]) == [0.0] and margins([]) == []
    assert margins([0.6, 0.6]) == [0.0, 0.0]  # level with a look-alike: no lead


def test_the_margin_is_used_when_it_separates_and_keeps_the_stated_precision_on_fresh_data() -> None:
    samples, groups = _turned(600, seed=3)
    cal = fit(samples, uses_inliers=False, groups=groups)
    alone = fit([s[:3] for s in samples], uses_inliers=False, groups=groups)  # similarity only, as fits were
    assert cal.margin_weight > 0 and alone.margin_weight == 0
    assert cal.recall["strong"] > alone.recall["strong"] + 0.1
    # monotone in the margin as in the score
    probs = [cal.probability(0.5, None, m) for m in np.linspace(-0.3, 0.3, 40)]
    assert all(b >= a for a, b in zip(probs, probs[1:])) and probs[-1] > probs[0]
    # on queries neither fit saw: more true objects called strong, and no less precisely
    fresh, _ = _turned(2000, seed=4)
    y = np.array([s[2] for s in fresh])

    def called(c: Calibration) -> np.ndarray:
        return np.array([c.probability(s, i, m) for s, i, _, m in fresh]) >= c.strong

    strong, strong_alone = called(cal), called(alone)
    assert y[strong].sum() > 2 * y[strong_alone].sum()
    assert y[strong].mean() >= y[strong_alone].mean() - 0.01
    assert y[strong].mean() >= cal.precision["strong"] - 0.03  # the stated held-out figure stands


def test_a_margin_is_kept_only_for_more_recall_at_no_less_precision() -> None:
    # every query has a true candidate, well above the rest: the lead adds little to the similarity
    samples, groups = _synthetic(300, seed=5)
    from artefact.index.calibration import margins

    with_margin = []
    for q in sorted(set(groups)):
        rows = [s for s, g in zip(samples, groups) if g == q]
        with_margin += [(*s, m) for s, m in zip(rows, margins([r[0] for r in rows]))]
    cal = fit(with_margin, uses_inliers=False, groups=groups)
    # either no weight, or one whose held-out strong recall beat similarity alone's at a held-out
    # precision no lower than the target (or than similarity alone's, where that misses it)
    alone = fit(samples, uses_inliers=False, groups=groups)
    assert cal.margin_weight == 0 or cal.recall["strong"] > alone.recall["strong"]
    assert cal.precision["strong"] >= min(TARGET_STRONG, alone.precision["strong"])
    # and a sample set whose margins are all zero (lone candidates) never gets a weight
    lone = [(s, i, lab, 0.0) for s, i, lab, _ in with_margin]
    assert fit(lone, uses_inliers=False, groups=groups).margin_weight == 0


def test_fits_stored_before_margins_read_similarity_alone() -> None:
    import json

    cal = Calibration(weights=[-8.0, 10.0], uses_inliers=False, strong=0.9, possible=0.5, margin_weight=4.0)
    again = Calibration.from_json(cal.to_json())
    assert again == cal and again.margin_weight == 4.0
    old = json.loads(cal.to_json())
    del old["margin_weight"]
    legacy = Calibration.from_json(json.dumps(old))
    assert legacy.margin_weight == 0.0
    assert legacy.probability(0.7, None, 0.3) == legacy.probability(0.7, None, -0.3) == legacy.probability(0.7)
    assert cal.probability(0.7, None, 0.3) > cal.probability(0.7, None, -0.3)
