"""Real photos as model inputs: probes that measure agreement between runtimes, and int8 calibration sets."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from artefact.embed.errors import ArtefactError, ModelUnavailableError
from artefact.embed.images import load_image
from artefact.embed.preprocess import PreprocessConfig, load_photo, normalise_batch, prepare

log = logging.getLogger(__name__)

# Views cut from each photo: (left, top, right, bottom) as fractions, plus a mirrored whole.
# Crops move the object in the frame and change its scale, like officers' photos do.
_VIEWS = ((0, 0, 1, 1), (0.1, 0.1, 0.9, 0.9), (0.2, 0.2, 0.8, 0.8), (0.3, 0.3, 0.7, 0.7),
          (0, 0, 0.6, 0.6), (0.4, 0, 1, 0.6), (0, 0.4, 0.6, 1), (0.4, 0.4, 1, 1))
# Calibration without catalogue photos uses other crops of the same photos, so the agreement
# measured on the probe views is not measured on the very inputs int8 was fitted to.
_CALIBRATION_VIEWS = ((0.05, 0.15, 0.95, 0.85), (0.15, 0.05, 0.85, 0.95), (0.25, 0.1, 0.75, 0.6),
                      (0.25, 0.4, 0.75, 0.9), (0.1, 0.2, 0.5, 0.6), (0.5, 0.2, 0.9, 0.6),
                      (0.2, 0.5, 0.7, 1), (0, 0, 0.8, 0.5))


# Photo files shipped inside packages the runtime extra installs, read straight from the
# package folder: importing scikit-learn itself would cost seconds (scipy) for two JPEGs.
_PACKAGED_PHOTOS = (
    ("sklearn", ("datasets/images/china.jpg", "datasets/images/flower.jpg")),
    ("skimage", ("data/chelsea.png", "data/coffee.png", "data/astronaut.png", "data/rocket.jpg")),
)


def builtin_photos() -> list[Image.Image]:
    """Real photographs that install with the runtime extra (scikit-learn's two sample photos).

    Fixed photos make the agreement figure of one export comparable on every machine;
    scikit-image's bundled photos are used only when scikit-learn is missing.

    Raises:
        ModelUnavailableError: neither package is installed.
    """
    for package, names in _PACKAGED_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        files = [root / n for n in names if (root / n).is_file()]
        if files:
            return [load_image(f) for f in files]
    raise ModelUnavailableError(
        "measuring a runtime's agreement needs scikit-learn's sample photos: "
        "pip install 'artefact-search[fast]' (or scikit-learn)"
    )


def views(img: Image.Image, boxes: Sequence[tuple[float, float, float, float]] = _VIEWS) -> list[Image.Image]:
    """Several crops of one photo (boxes as fractions) and its mirror image."""
    w, h = img.size
    out = [img.crop((round(l * w), round(t * h), round(r * w), round(b * h))) for l, t, r, b in boxes]
    return out + [ImageOps.mirror(img)]


def probe_arrays(cfg: PreprocessConfig) -> list[np.ndarray]:
    """The fixed agreement probes: every view of the built-in photos, as uint8 model inputs."""
    return [prepare(v.convert("RGB"), cfg) for img in builtin_photos() for v in views(img)]


def calibration_batch(cfg: PreprocessConfig, photos: Sequence[Path] = (), limit: int = 64) -> np.ndarray:
    """Inputs for static int8 calibration: catalogue photos when given, else views of the built-in photos.

    Unreadable photos are skipped with a log line; the decode is the same as ingest's.
    """
    arrays: list[np.ndarray] = []
    for path in list(photos)[:limit]:
        try:
            arrays.append(load_photo(Path(path), cfg)[1])
        except (ArtefactError, OSError) as exc:
            log.info("calibration: skipped %s (%s)", path, exc)
    if len(arrays) < 8:
        arrays += [prepare(v.convert("RGB"), cfg) for img in builtin_photos() for v in views(img, _CALIBRATION_VIEWS)]
    return normalise_batch(arrays[:limit], cfg)


def cosine_agreement(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(lowest, mean) cosine between matching rows of two feature matrices."""
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = other / np.maximum(np.linalg.norm(other, axis=1, keepdims=True), 1e-12)
    cos = (a * b).sum(axis=1)
    return float(cos.min()), float(cos.mean())
