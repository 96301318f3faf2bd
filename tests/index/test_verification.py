"""Geometric verification: the same object under a new viewpoint verifies, look-alikes do not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from artefact.embed.images import load_image
from artefact.index.verification import MIN_MATCHES, draw_evidence, extract, verify_many

from index_helpers import SAMPLE_IMAGES  # type: ignore[import-not-found]


def _perspective(img: Image.Image, angle: float = 25.0) -> Image.Image:
    """Rotate in-plane and tilt: what a hand-held phone does to a flat object."""
    rotated = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 80, 70))
    w, h = rotated.size
    # Quad of the source that maps onto the output: top edge narrower (tilt away).
    quad = (w * 0.12, 0, 0, h, w, h, w * 0.88, 0)
    return rotated.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut"])
def test_photo_and_rotated_tilted_copy_verify_with_many_inliers(photo_image, name: str) -> None:
    original = photo_image(name)
    copy = _perspective(original)
    result = verify_many(extract(copy), [extract(original)])[0]
    assert result.inliers >= 40, result.inliers
    assert len(result.query_xy) == len(result.cand_xy) == result.inliers


def test_different_objects_of_similar_shape_do_not_verify() -> None:
    # Greek coins photographed together: same shape, size, material and lighting.
    coins = sorted(SAMPLE_IMAGES.glob("SMP-COIN-*/1.jpg"))[:10]
    feats = [extract(load_image(p)) for p in coins]
    for i, f in enumerate(feats):
        others = feats[:i] + feats[i + 1 :]
        counts = [v.inliers for v in verify_many(f, others)]
        assert max(counts) < MIN_MATCHES, (coins[i].parent.name, counts)


def test_unrelated_photos_do_not_verify(photo_image) -> None:
    names = ["chelsea", "coffee", "astronaut", "rocket"]
    feats = [extract(photo_image(n)) for n in names]
    for i, f in enumerate(feats):
        counts = [v.inliers for v in verify_many(f, feats[:i] + feats[i + 1 :])]
        assert max(counts) == 0, (names[i], counts)


def test_features_round_trip_through_storage_rows(photo_image) -> None:
    from artefact.index.verification import Features

    f = extract(photo_image("coffee"))
    g = Features.from_row(*f.to_row())
    assert g.kind == f.kind and g.size == f.size
    np.testing.assert_array_equal(g.xy, f.xy)
    np.testing.assert_array_equal(g.desc, f.desc)
    assert g.desc.dtype == np.uint8 and g.desc.shape[1] == 128


def test_orb_is_available_as_an_alternative(photo_image) -> None:
    original = photo_image("astronaut")
    result = verify_many(extract(_perspective(original, 10), "orb"), [extract(original, "orb")])[0]
    assert result.inliers >= MIN_MATCHES


def test_evidence_image_shows_both_photos(photo_image) -> None:
    original = photo_image("chelsea")
    copy = _perspective(original)
    v = verify_many(extract(copy), [extract(original)])[0]
    evidence = draw_evidence(copy, original, v)
    assert evidence.width > 600 and evidence.height >= 300
    # The correspondences are drawn over the photos: compare with the same canvas without them.
    from artefact.index.verification import Verification

    plain = draw_evidence(copy, original, Verification(0, v.query_xy[:0], v.cand_xy[:0]))
    changed = np.any(np.asarray(evidence) != np.asarray(plain), axis=2).sum()
    assert changed > 20 * v.inliers
