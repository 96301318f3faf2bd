"""Model input preparation shared by ingest workers and queries (PIL + numpy, no torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from artefact.embed.images import DEFAULT_MAX_PIXELS, ImageSource, load_image

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessConfig:
    """How a model wants its pixels; mirrors open_clip's preprocess config keys."""

    size: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # shortest (+ centre crop) | longest (+ pad) | squash
    fill_color: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        size = d.get("size", 224)
        if isinstance(size, (list, tuple)):
            size = int(size[0])
        return cls(
            size=int(size),
            mean=tuple(float(x) for x in d.get("mean", cls.mean)),  # type: ignore[arg-type]
            std=tuple(float(x) for x in d.get("std", cls.std)),  # type: ignore[arg-type]
            interpolation=str(d.get("interpolation", "bicubic")),
            resize_mode=str(d.get("resize_mode", "shortest")),
            fill_color=int(d.get("fill_color", 0)),
        )


def prepare(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """Resize and crop an RGB image to the model's square input as uint8 HxWx3."""
    resample = _RESAMPLE.get(cfg.interpolation, Image.Resampling.BICUBIC)
    s = cfg.size
    w, h = img.size
    if cfg.resize_mode == "squash":
        out = img.resize((s, s), resample)
    elif cfg.resize_mode == "longest":
        scale = s / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        fill = (cfg.fill_color,) * 3
        out = Image.new("RGB", (s, s), fill)
        out.paste(img.resize((nw, nh), resample), ((s - nw) // 2, (s - nh) // 2))
    else:
        # Crop first, resize last: the centred square of the short side becomes the s x s input,
        # so the work is bounded by the output however thin the picture (scaling the short side
        # up first made a 16000x2 strip a 1.8M x 224 intermediate: seconds and 1.6 GB).
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        out = img.resize((s, s), resample, box=(left, top, left + side, top + side))
    return np.asarray(out, dtype=np.uint8)


# Decoded photos keep at least this shorter side: enough for the model and for local
# features (verification works at 480 px, index/verification.py), small enough that JPEG draft mode saves most of the work.
MIN_DECODE_SIDE = 480


def decode_side(cfg: PreprocessConfig) -> int:
    """Shorter side photos are decoded to, for ingest and queries alike."""
    return max(2 * cfg.size, MIN_DECODE_SIDE)


def load_photo(
    source: ImageSource,
    cfg: PreprocessConfig,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """Decode a photo once for both uses: the upright image (for local features) and the model input."""
    img = load_image(source, max_pixels=max_pixels, min_side=decode_side(cfg), max_bytes=max_bytes)
    return img, prepare(img, cfg)


def load_for_model(
    source: ImageSource,
    cfg: PreprocessConfig,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a photo and prepare it for the model.

    Returns:
        The uint8 model input and the photo's full (width, height) upright.
    """
    img, arr = load_photo(source, cfg, max_pixels=max_pixels, max_bytes=max_bytes)
    return arr, img.info.get("original_size", img.size)


def normalise_batch(arrays: list[np.ndarray], cfg: PreprocessConfig) -> np.ndarray:
    """Stack uint8 HxWx3 inputs into a float32 NCHW batch normalised by mean/std.

    One fused multiply-subtract from the uint8 NCHW view straight into the output: ~0.2 ms
    per 224 px photo against 2.4 ms for divide, subtract, divide and a transposing copy (each
    a float32 temporary), which was a sixth of a compiled model's single-photo time and
    ~2.3 ms per photo of a batch. Results agree to float32 rounding (1e-7).
    """
    u8 = np.stack(arrays).transpose(0, 3, 1, 2)
    std = np.asarray(cfg.std, dtype=np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, -1, 1, 1)
    shift = (np.asarray(cfg.mean, dtype=np.float64) / std).astype(np.float32).reshape(1, -1, 1, 1)
    batch = np.empty(u8.shape, dtype=np.float32)
    np.multiply(u8, scale, out=batch)
    batch -= shift
    return batch
