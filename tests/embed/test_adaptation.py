"""The turned-3D adaptation of the offline backbone: the shipped map, applied in the tower, as a model of its own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from artefact.embed.adaptation import load_adaptation
from artefact.embed.embedder import l2_normalise
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.loader import embedder_for, load_embedder
from artefact.embed.models import EFFICIENTNET_LITE0, OFFLINE_FALLBACK_SPEC, LoadOptions, ModelSpec
from artefact.index.calibration import builtin_calibration
from artefact.index.errors import IndexMismatchError
from artefact.index.library import Library

ADAPTED = ModelSpec(EFFICIENTNET_LITE0, "tf_efficientnet_lite0+turned3d", "imagenet")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def adapted(offline_embedder):
    # the offline default since issue 14
    assert offline_embedder.description.model_name == ADAPTED.model_name and OFFLINE_FALLBACK_SPEC == ADAPTED
    return offline_embedder


@pytest.fixture(scope="module")
def arrays(plain_offline_embedder, photo_image):
    from artefact.embed.preprocess import prepare

    return [prepare(photo_image(name), plain_offline_embedder.preprocess) for name in PHOTOS]


def test_adapted_vectors_are_the_shipped_map_of_the_plain_ones(adapted, plain_offline_embedder, arrays):
    plain = plain_offline_embedder.embed_prepared(arrays)
    expected = l2_normalise(load_adaptation("turned3d", 1280).apply(plain))
    got = adapted.embed_prepared(arrays)
    assert np.min(np.sum(got * expected, axis=1)) > 0.9999
    # and the map does change the vectors (whitening moves every photo)
    assert np.max(np.sum(got * plain, axis=1)) < 0.99


def test_a_compiled_runtime_carries_the_adaptation(adapted, arrays, tmp_path):
    compiled = embedder_for(adapted.description, None,
                            LoadOptions(allow_download=False, cache_dir=tmp_path, runtime="onnx", precision="fp32"))
    assert compiled.description.identity() == adapted.description.identity()
    cos = np.sum(compiled.embed_prepared(arrays) * adapted.embed_prepared(arrays), axis=1)
    assert np.min(cos) > 0.999


def test_the_adapted_model_is_another_model(adapted, plain_offline_embedder, tmp_path):
    assert adapted.description.identity() != plain_offline_embedder.description.identity()
    assert adapted.description.extra["adaptation"]["name"] == "turned3d"
    with Library(tmp_path / "home") as library:
        library.bind_model(plain_offline_embedder.description)
        with pytest.raises(IndexMismatchError):
            library.check_model(adapted.description)
    # the plain model's built-in verdicts were fitted on plain similarities; the shipped map has its own
    plain_cal = builtin_calibration(plain_offline_embedder.description, True)
    adapted_cal = builtin_calibration(adapted.description, True)
    assert plain_cal is not None and adapted_cal is not None and adapted_cal != plain_cal
    assert "turned3d" in adapted_cal.source
    # a map that differs from the one the fit was made with gets none (its weights checksum differs)
    other_map = replace(adapted.description, weights_sha256="0" * 64)
    assert builtin_calibration(other_map, True) is None and builtin_calibration(other_map, False) is None


def test_an_unknown_adaptation_is_refused_by_name(model_cache_dir):
    with pytest.raises(ModelUnavailableError, match="unknown adaptation 'sideways'"):
        load_embedder(replace(OFFLINE_FALLBACK_SPEC, model_name="tf_efficientnet_lite0+sideways"),
                      LoadOptions(allow_download=False, cache_dir=model_cache_dir))


def test_an_index_of_the_plain_model_keeps_it_when_only_the_family_is_named(plain_offline_embedder, tmp_path):
    """Indexes built before the default became the adapted model are searched with their own model:
    `--backend efficientnet_lite0` (as scripts pass it) names the family, not today's default."""
    from artefact.api.settings import Settings

    with Library(tmp_path / "home") as library:
        library.bind_model(plain_offline_embedder.description)
        existing = library.model
    assert existing is not None
    family_only = Settings(home=tmp_path / "home", backend=EFFICIENTNET_LITE0)
    assert family_only.explicit_spec(existing) is None  # the index's own model
    assert family_only.explicit_spec(None) == OFFLINE_FALLBACK_SPEC  # a new index: today's default
    # Naming the model itself still means that model, and the index refuses it (another model).
    named = Settings(home=tmp_path / "home", backend=EFFICIENTNET_LITE0, model=ADAPTED.model_name)
    assert named.explicit_spec(existing) == ADAPTED
    loaded = embedder_for(existing, family_only.explicit_spec(existing), LoadOptions(allow_download=False,
                                                                                    cache_dir=tmp_path / "models"))
    assert loaded.description.identity() == existing.identity()
