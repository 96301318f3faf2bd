"""Model inputs: the fused uint8 -> normalised float32 NCHW conversion every runtime is fed."""

from __future__ import annotations

import numpy as np

from artefact.embed.preprocess import PreprocessConfig, normalise_batch

# open_clip's CLIP statistics: unequal per channel, so a channel mix-up cannot pass unseen.
CLIP = PreprocessConfig(size=32, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))


def test_matches_the_textbook_formula_per_channel():
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    got = normalise_batch(arrays, CLIP)
    x = np.stack(arrays).astype(np.float64) / 255.0
    expected = ((x - np.array(CLIP.mean)) / np.array(CLIP.std)).transpose(0, 3, 1, 2)
    assert got.dtype == np.float32 and got.shape == (3, 3, 32, 32) and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the extremes land where the statistics put them
    white = normalise_batch([np.full((32, 32, 3), 255, np.uint8)], CLIP)[0, :, 0, 0]
    np.testing.assert_allclose(white, (1 - np.array(CLIP.mean)) / np.array(CLIP.std), atol=1e-5)
