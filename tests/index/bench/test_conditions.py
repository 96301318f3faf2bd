"""Checkpoint photo conditions: valid RGB images, deterministic from the seed, harsher with severity."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from artefact.index.bench import conditions as C

from index_helpers import SAMPLE_IMAGES

ISSUE_CONDITIONS = {"perspective", "rotation", "partial_view", "scale", "colour_cast", "low_light", "glare",
                    "motion_blur", "focus_blur", "noise", "jpeg", "clutter", "occlusion"}


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    img = Image.open(SAMPLE_IMAGES / "SMP-PAINT-01" / "1.jpg").convert("RGB")
    return img.resize((160, 128))


def test_every_condition_of_the_issue_is_registered() -> None:
    assert ISSUE_CONDITIONS <= set(C.CONDITIONS)
    assert all(c.description for c in C.CONDITIONS.values())


@pytest.mark.parametrize("name", sorted(C.CONDITIONS))
@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_condition_gives_a_valid_rgb_photo_deterministically(painting: Image.Image, name: str, severity: int) -> None:
    a = C.apply(name, painting, severity, seed=3, key="SMP-PAINT-01")
    b = C.apply(name, painting, severity, seed=3, key="SMP-PAINT-01")
    assert a.mode == "RGB" and min(a.size) >= 8
    arr = np.asarray(a)
    assert arr.dtype == np.uint8 and arr.std() > 1  # not blank
    assert np.array_equal(arr, np.asarray(b))
    assert painting.size == (160, 128)  # the input is not modified


@pytest.mark.parametrize("name", ["perspective", "rotation", "partial_view", "noise", "glare", "clutter", "occlusion"])
def test_seed_and_key_change_the_random_draw(painting: Image.Image, name: str) -> None:
    base = np.asarray(C.apply(name, painting, 2, seed=1, key="a"))
    other_seed = np.asarray(C.apply(name, painting, 2, seed=2, key="a"))
    other_key = np.asarray(C.apply(name, painting, 2, seed=1, key="b"))
    assert base.shape != other_seed.shape or not np.array_equal(base, other_seed)
    assert base.shape != other_key.shape or not np.array_equal(base, other_key)


@pytest.mark.parametrize("name", ["noise", "focus_blur", "low_light", "jpeg", "scale", "occlusion"])
def test_severity_grades_the_damage(painting: Image.Image, name: str) -> None:
    ref = np.asarray(painting, dtype=np.float32)
    damage = [np.abs(np.asarray(C.apply(name, painting, s, seed=0), dtype=np.float32) - ref).mean() for s in C.SEVERITIES]
    assert damage[0] < damage[1] < damage[2], damage


def test_partial_view_keeps_less_at_higher_severity(painting: Image.Image) -> None:
    areas = [np.prod(C.apply("partial_view", painting, s).size) for s in C.SEVERITIES]
    assert areas[0] > areas[1] > areas[2]


def test_greyscale_and_rgba_inputs_are_accepted(painting: Image.Image) -> None:
    assert C.apply("rotation", painting.convert("L"), 1).mode == "RGB"
    assert C.apply("glare", painting.convert("RGBA"), 1).mode == "RGB"


def test_unknown_condition_or_severity_is_refused(painting: Image.Image) -> None:
    with pytest.raises(ValueError, match="unknown condition"):
        C.apply("fog", painting, 1)
    with pytest.raises(ValueError, match="severity"):
        C.apply("noise", painting, 4)


def test_a_researcher_can_add_a_condition(painting: Image.Image) -> None:
    @C.condition("test_invert", "colours inverted (test only)")
    def invert(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
        return Image.fromarray(255 - np.asarray(img))

    try:
        out = C.apply("test_invert", painting, 1)
        assert np.array_equal(np.asarray(out), 255 - np.asarray(painting))
    finally:
        del C.CONDITIONS["test_invert"]
