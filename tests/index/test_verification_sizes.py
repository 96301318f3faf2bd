"""Features extracted at different working sizes (an index built before a default changed) still verify,
and the evidence image draws each photo at the size its points were measured in."""

from __future__ import annotations

from artefact.index.verification import MIN_MATCHES, draw_evidence, extract, verify_many


def test_old_working_size_verifies_and_draws_at_its_own_size(photo_image):
    original = photo_image("astronaut").resize((1024, 1024))  # larger than both working sizes
    stored = extract(original, "sift", max_side=640)  # as an index built with 640 px working images holds them
    query = extract(original.rotate(8, expand=True), "sift", max_side=480)
    (v,) = verify_many(query, [stored])
    assert v.inliers >= MIN_MATCHES
    assert v.query_size == query.size and v.cand_size == stored.size == (640, 640)
    assert v.cand_xy[:, 0].max() > 480  # points in the 640 px frame, beyond the 480 px one
    canvas = draw_evidence(original.rotate(8, expand=True), original, v, max_side=480)
    assert canvas.size == (query.size[0] + 10 + stored.size[0], max(query.size[1], stored.size[1]))
