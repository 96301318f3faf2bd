"""Weak verification never overrides a better embedding order; strong verification still may."""

from __future__ import annotations

from artefact.index.calibration import BUILTIN_ADAPTED, NO_MATCH, STRONG, STRONG_EVIDENCE, TURNED3D_WEIGHTS
from artefact.index.records import ImageRecord, ObjectRecord
from artefact.index.search import ObjectMatch, answer_order, hold_weak_evidence

CAL = BUILTIN_ADAPTED[(TURNED3D_WEIGHTS, True)]  # the default offline model's verified calibration


def match(object_id: str, score: float, inliers: int) -> ObjectMatch:
    m = ObjectMatch(ObjectRecord(object_id), score, ImageRecord(1, object_id, "x.jpg", "0" * 64, 1, 1, 1), inliers=inliers)
    m.probability = CAL.probability(score, inliers)
    return m


def ranked(matches: list[ObjectMatch]) -> list[str]:
    hold_weak_evidence(matches)
    for m in matches:
        m.verdict = CAL.verdict(m.probability or 0.0)
    return [m.record.object_id for m in answer_order(matches, CAL, True)]


def test_a_weakly_verified_false_candidate_does_not_demote_a_better_ranked_true_match() -> None:
    weak = CAL.min_inliers + 1  # verified by calibration's rule, but weak evidence
    assert weak < STRONG_EVIDENCE
    true, false = match("TRUE", 0.86, 0), match("LOOKALIKE", 0.80, weak)
    assert false.probability is not None and true.probability is not None
    assert false.probability > true.probability  # calibrated alone, the look-alike would jump ahead
    assert ranked([false, true]) == ["TRUE", "LOOKALIKE"]
    assert false.verdict != STRONG and false.probability <= true.probability


def test_strong_evidence_still_lifts_a_less_similar_true_match() -> None:
    true, false = match("TRUE", 0.80, STRONG_EVIDENCE + 10), match("LOOKALIKE", 0.86, 0)
    assert ranked([false, true]) == ["TRUE", "LOOKALIKE"]
    assert true.verdict == STRONG


def test_weak_evidence_keeps_its_lift_over_less_similar_candidates() -> None:
    """The top candidate by similarity keeps what its own (weak) verification gives it."""
    top, other = match("TOP", 0.86, CAL.min_inliers + 1), match("OTHER", 0.70, 0)
    before = top.probability
    assert ranked([other, top]) == ["TOP", "OTHER"] and top.probability == before
    assert other.verdict == NO_MATCH
