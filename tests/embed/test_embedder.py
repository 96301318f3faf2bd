"""Embedders: vector contract, batching, checkpoints and model folders, unavailable
weights and the offline fallback, and retrieval quality with real weights."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artefact.embed.errors import ImageDecodeError, ModelUnavailableError
from artefact.embed.loader import load_embedder, load_embedder_with_fallback
from artefact.embed.models import OFFLINE_FALLBACK_SPEC, LoadOptions, ModelSpec
from artefact.embed.preprocess import load_for_model, normalise_batch

TINY_NAME = "tiny-clip"
ViT_B_32_TAG = ModelSpec("open_clip", "ViT-B-32", "laion2b_s34b_b79k")
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_unit_vectors(vecs: np.ndarray, n: int, dim: int) -> None:
    assert isinstance(vecs, np.ndarray)
    assert vecs.dtype == np.float32
    assert vecs.shape == (n, dim)
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def jpegs(photo_bytes) -> list[bytes]:
    return [photo_bytes(name) for name in NAMES]


# --------------------------------------------------------------------------- vector contract


@pytest.mark.parametrize("which", ["tiny_embedder", "offline_embedder"])
def test_vectors_are_unit_float32(which, request, jpegs):
    emb = request.getfixturevalue(which)
    vecs = emb.embed_images(jpegs)
    assert_unit_vectors(vecs, len(jpegs), emb.dim)
    # Different photos give different vectors.
    sims = vecs @ vecs.T
    assert (sims[~np.eye(len(jpegs), dtype=bool)] < 0.9999).all()


@pytest.mark.parametrize("which", ["tiny_embedder", "offline_embedder"])
def test_batching_matches_one_by_one(which, request, jpegs, monkeypatch):
    emb = request.getfixturevalue(which)
    together = emb.embed_images(jpegs)
    singles = np.concatenate([emb.embed_images([j]) for j in jpegs])
    np.testing.assert_allclose(together, singles, atol=1e-5)
    monkeypatch.setattr(emb, "batch_size", 4)  # 6 photos: batches of 4 and 2
    np.testing.assert_allclose(emb.embed_images(jpegs), singles, atol=1e-5)


def test_path_and_bytes_give_identical_vectors(tiny_embedder, offline_embedder, photo_files):
    paths = list(photo_files.values())
    datas = [p.read_bytes() for p in paths]
    for emb in (tiny_embedder, offline_embedder):
        np.testing.assert_array_equal(emb.embed_images(paths), emb.embed_images(datas))
        np.testing.assert_array_equal(emb.embed_images([str(p) for p in paths[:2]]), emb.embed_images(datas[:2]))


def test_embed_prepared_matches_embed_images(tiny_embedder, jpegs):
    arrays = [load_for_model(j, tiny_embedder.preprocess)[0] for j in jpegs]
    assert all(a.shape == (32, 32, 3) and a.dtype == np.uint8 for a in arrays)
    np.testing.assert_array_equal(tiny_embedder.embed_prepared(arrays), tiny_embedder.embed_images(jpegs))


def test_empty_input_gives_empty_matrix(tiny_embedder):
    for out in (tiny_embedder.embed_images([]), tiny_embedder.embed_prepared([])):
        assert out.shape == (0, tiny_embedder.dim) and out.dtype == np.float32


def test_bad_photo_raises_typed_error(tiny_embedder, jpegs):
    with pytest.raises(ImageDecodeError):
        tiny_embedder.embed_images([jpegs[0], b"not a photo"])


def test_load_for_model_reports_original_size(photo_image, encode_image):
    from artefact.embed.preprocess import PreprocessConfig

    big = photo_image("coffee").resize((2400, 1600))
    arr, size = load_for_model(encode_image(big, "JPEG"), PreprocessConfig(size=224))
    assert arr.shape == (224, 224, 3) and arr.dtype == np.uint8
    assert size == (2400, 1600)


def test_seeded_random_init_is_reproducible(tiny_spec, tiny_options, tiny_embedder, jpegs):
    again = load_embedder(tiny_spec, tiny_options)
    np.testing.assert_array_equal(again.embed_images(jpegs), tiny_embedder.embed_images(jpegs))
    assert again.description.identity() == tiny_embedder.description.identity()


# --------------------------------------------------------------------------- text


def test_text_embedding_with_tiny_clip(tiny_embedder):
    assert tiny_embedder.has_text
    vecs = tiny_embedder.embed_text(["a bronze statuette of a horse", "an icon of a saint", "a gold coin"])
    assert_unit_vectors(vecs, 3, tiny_embedder.dim)
    assert not np.allclose(vecs[0], vecs[1])
    np.testing.assert_allclose(tiny_embedder.embed_text(["a gold coin"])[0], vecs[2], atol=1e-5)


def test_text_embedding_unavailable_for_efficientnet(offline_embedder):
    assert not offline_embedder.has_text
    with pytest.raises(ModelUnavailableError) as err:
        offline_embedder.embed_text(["a bronze statuette"])
    msg = str(err.value)
    assert "text" in msg and "efficientnet" in msg.lower()


# --------------------------------------------------------------------------- description


def test_tiny_description(tiny_embedder):
    d = tiny_embedder.description
    assert d.dim == tiny_embedder.dim == 32
    assert d.backend == "open_clip" and d.model_name == TINY_NAME and d.has_text
    assert d.weights_sha256 == "random-init:seed=0"
    assert d.preprocess["size"] in (32, [32, 32])
    assert len(d.preprocess["mean"]) == 3 and len(d.preprocess["std"]) == 3
    assert tiny_embedder.preprocess.size == 32
    # Survives the JSON round trip of an index manifest.
    from artefact.embed.models import ModelDescription

    assert ModelDescription.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_offline_description(plain_offline_embedder, offline_embedder):
    from artefact.embed.efficientnet_backend import wheel_weights_path

    d = plain_offline_embedder.description
    assert d.backend == "efficientnet_lite0" and not d.has_text
    assert d.dim == plain_offline_embedder.dim == 1280
    assert d.preprocess["size"] == 224 and d.preprocess["mean"] == [0.5, 0.5, 0.5]
    assert d.weights_sha256 == sha256_of(wheel_weights_path())
    assert len(d.weights_sha256) == 64
    # the offline default adds the turned3d map: same backbone and input, its own weights identity
    a = offline_embedder.description
    assert (a.backend, a.dim, a.preprocess, a.has_text) == (d.backend, d.dim, d.preprocess, d.has_text)
    assert len(a.weights_sha256) == 64 and a.weights_sha256 != d.weights_sha256


# --------------------------------------------------------------------------- checkpoints


def _perturbed_tiny_model(tiny_embedder):
    """A fresh tiny CLIP whose weights differ from the seed-0 random init."""
    import open_clip
    import torch

    model = open_clip.create_model(TINY_NAME)  # config registered by tiny_embedder
    model.load_state_dict(tiny_embedder.module.state_dict())
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _reference_embeddings(model, embedder, jpegs) -> np.ndarray:
    """What `model` itself gives for the photos, preprocessed exactly as `embedder` does."""
    import torch

    arrays = [load_for_model(j, embedder.preprocess)[0] for j in jpegs]
    with torch.inference_mode():
        feats = model.encode_image(torch.from_numpy(normalise_batch(arrays, embedder.preprocess)))
    feats = feats.numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def _reference_text(model, texts) -> np.ndarray:
    import open_clip
    import torch

    with torch.inference_mode():
        feats = model.encode_text(open_clip.get_tokenizer(TINY_NAME)(texts)).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_checkpoint_file_reload_same_weights(suffix, tiny_embedder, tiny_options, jpegs, tmp_path):
    import torch

    path = tmp_path / f"tiny{suffix}"
    torch.save(tiny_embedder.module.state_dict(), path)
    reloaded = load_embedder(ModelSpec("open_clip", TINY_NAME, str(path)), tiny_options)
    np.testing.assert_allclose(reloaded.embed_images(jpegs), tiny_embedder.embed_images(jpegs), atol=1e-6)
    assert reloaded.description.weights_sha256 == sha256_of(path)
    assert reloaded.description.pretrained == str(path)
    assert reloaded.dim == tiny_embedder.dim


def test_checkpoint_file_weights_are_really_loaded(tiny_embedder, tiny_options, jpegs, tmp_path):
    import torch

    model = _perturbed_tiny_model(tiny_embedder)
    path = tmp_path / "perturbed.pt"
    torch.save(model.state_dict(), path)
    reloaded = load_embedder(ModelSpec("open_clip", TINY_NAME, str(path)), tiny_options)
    got = reloaded.embed_images(jpegs)
    np.testing.assert_allclose(got, _reference_embeddings(model, reloaded, jpegs), atol=1e-6)
    # ... and not the seed-0 random init.
    assert np.abs(got - tiny_embedder.embed_images(jpegs)).max() > 1e-2
    texts = ["a stolen chalice", "a carved mask"]
    np.testing.assert_allclose(reloaded.embed_text(texts), _reference_text(model, texts), atol=1e-6)
    assert reloaded.description.weights_sha256 == sha256_of(path)
    assert reloaded.description.identity() != tiny_embedder.description.identity()


def test_model_folder(tiny_embedder, tiny_config_dir, jpegs, tmp_path):
    import open_clip
    import torch

    model = _perturbed_tiny_model(tiny_embedder)
    folder = tmp_path / "tiny-folder"
    folder.mkdir()
    model_cfg = json.loads((tiny_config_dir / f"{TINY_NAME}.json").read_text())
    config = {"model_cfg": model_cfg, "preprocess_cfg": open_clip.get_model_preprocess_cfg(model)}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    weights = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), weights)

    # No config_dir: everything comes from the folder.
    options = LoadOptions(cache_dir=tmp_path / "cache", allow_download=False)
    emb = load_embedder(ModelSpec("open_clip", "local-dir:" + str(folder), None), options)
    got = emb.embed_images(jpegs)
    assert_unit_vectors(got, len(jpegs), 32)
    np.testing.assert_allclose(got, _reference_embeddings(model, emb, jpegs), atol=1e-6)
    assert np.abs(got - tiny_embedder.embed_images(jpegs)).max() > 1e-2
    assert emb.preprocess.size == 32
    assert emb.description.weights_sha256 == sha256_of(weights)
    texts = ["a stolen chalice"]
    np.testing.assert_allclose(emb.embed_text(texts), _reference_text(model, texts), atol=1e-6)


def test_model_folder_without_config_or_weights(tmp_path):
    options = LoadOptions(cache_dir=tmp_path / "cache", allow_download=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("open_clip", "local-dir:" + str(empty), None), options)
    assert "open_clip_config.json" in str(err.value)
    (empty / "open_clip_config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("open_clip", "local-dir:" + str(empty), None), options)
    assert "weights" in str(err.value)


# --------------------------------------------------------------------------- unavailable weights


@pytest.fixture
def offline_options(tmp_path) -> LoadOptions:
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    return LoadOptions(allow_download=False, cache_dir=cache)


def test_pretrained_tag_without_cached_weights(offline_options):
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ViT_B_32_TAG, offline_options)
    msg = str(err.value)
    assert "ARTEFACT_PRETRAINED" in msg
    assert "open_clip_pytorch_model.bin" in msg
    assert "ViT-B-32" in msg and "laion2b_s34b_b79k" in msg
    assert str(offline_options.cache_dir) in msg


def test_default_falls_back_to_offline_model_with_warning(offline_options, caplog):
    with caplog.at_level(logging.WARNING, logger="artefact.embed"):
        emb = load_embedder_with_fallback(None, offline_options)
    assert emb.description.backend == OFFLINE_FALLBACK_SPEC.backend == "efficientnet_lite0"
    assert emb.description.model_name == "tf_efficientnet_lite0+turned3d"  # the adapted offline default
    assert not emb.has_text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "the fallback must be logged as a warning"
    text = "\n".join(r.getMessage() for r in warnings)
    assert OFFLINE_FALLBACK_SPEC.label() in text
    assert "EfficientNet-Lite0" in text
    assert "ARTEFACT_PRETRAINED" in text  # and says how to get the real model


def test_explicit_spec_never_falls_back(offline_options, caplog):
    with caplog.at_level(logging.WARNING, logger="artefact.embed"):
        with pytest.raises(ModelUnavailableError):
            load_embedder_with_fallback(ViT_B_32_TAG, offline_options)
    assert not [r for r in caplog.records if "Falling back" in r.getMessage()]


def test_explicit_working_spec_is_used_as_is(tiny_spec, tiny_options):
    emb = load_embedder_with_fallback(tiny_spec, tiny_options)
    assert emb.description.model_name == TINY_NAME and emb.dim == 32


def test_missing_checkpoint_path(tiny_options, tmp_path):
    missing = tmp_path / "nope" / "weights.pt"
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("open_clip", TINY_NAME, str(missing)), tiny_options)
    assert str(missing) in str(err.value) and "not found" in str(err.value)


def test_missing_efficientnet_weights(tmp_path):
    missing = tmp_path / "lite0.pth"
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("efficientnet_lite0", "tf_efficientnet_lite0", str(missing)), LoadOptions())
    assert str(missing) in str(err.value)


@pytest.mark.parametrize(
    "spec,words",
    [
        (ModelSpec("open_clip", "ViT-Z-99", None), ["unknown open_clip model", "ViT-Z-99"]),
        (ModelSpec("open_clip", TINY_NAME, "no-such-tag"), ["no-such-tag", "neither"]),
        (ModelSpec("efficientnet_lite0", "resnet50", "imagenet"), ["resnet50"]),
        (ModelSpec("tensorflow", "ViT-B-32", None), ["unknown model backend", "tensorflow"]),
    ],
    ids=["unknown-clip-model", "unknown-tag", "unknown-efficientnet", "unknown-backend"],
)
def test_unknown_model(spec, words, tiny_options):
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(spec, tiny_options)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    "name,content",
    [
        ("garbage.pt", b"this is not a checkpoint\n" * 10),
        ("empty.bin", b""),
        ("garbage.safetensors", b"\x00" * 100),
    ],
    ids=["garbage-pt", "empty-bin", "garbage-safetensors"],
)
def test_corrupt_checkpoint_is_a_typed_error(name, content, tiny_options, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("open_clip", TINY_NAME, str(path)), tiny_options)
    assert str(path) in str(err.value)


def test_checkpoint_of_another_model_is_a_typed_error(tiny_options, tmp_path):
    import torch

    path = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(4, 4)}, path)
    with pytest.raises(ModelUnavailableError) as err:
        load_embedder(ModelSpec("open_clip", TINY_NAME, str(path)), tiny_options)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- quality (real weights)


def _modified(img: Image.Image, how: str) -> bytes:
    w, h = img.size
    if how in ("crop", "all"):
        dw, dh = int(w * 0.1), int(h * 0.1)
        img = img.crop((dw, dh, w - dw, h - dh))  # central 80%
    if how in ("rotate", "all"):
        img = img.rotate(10, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=40 if how in ("jpeg", "all") else 95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def gallery(offline_embedder, photo_bytes) -> np.ndarray:
    return offline_embedder.embed_images([photo_bytes(n) for n in NAMES])


@pytest.mark.parametrize("how", ["crop", "rotate", "jpeg", "all"])
def test_modified_copy_is_nearest(how, offline_embedder, gallery, photo_image):
    queries = offline_embedder.embed_images([_modified(photo_image(n), how) for n in NAMES])
    sims = queries @ gallery.T  # (query, gallery)
    for i, name in enumerate(NAMES):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max(), f"{name} ({how}): self {sims[i, i]:.3f}, best other {others.max():.3f}"
    # ... and the gallery photo's nearest query is its own modified copy.
    assert (sims.argmax(axis=0) == np.arange(len(NAMES))).all()
