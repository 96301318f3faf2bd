"""One photo loader for catalogue and query images: path or bytes in, upright RGB out."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from artefact.embed.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

log = logging.getLogger(__name__)

ImageSource = Union[str, Path, bytes]

# 12 MP phone photos are the norm and 200 MP sensors exist; anything far larger
# is more likely a decompression bomb than a photograph.
DEFAULT_MAX_PIXELS = 120_000_000

SUPPORTED_FORMATS = "JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF"

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
        log.warning("pillow-heif is not installed: HEIC/HEIF photos cannot be read")
    _heif_registered = True


def _describe(source: ImageSource) -> str:
    return "uploaded photo" if isinstance(source, bytes) else str(source)


def _open_bytes(source: ImageSource, max_bytes: int | None) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{path}: file not found or not a regular file")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ImageTooLargeError(f"{path}: file is {size} bytes, the limit is {max_bytes}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageDecodeError(f"{_describe(source)}: file is empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageTooLargeError(
            f"{_describe(source)}: {len(data)} bytes, the limit is {max_bytes}"
        )
    return data


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
    max_bytes: int | None = None,
) -> Image.Image:
    """Decode a photo into an upright 8-bit RGB image.

    Args:
        source: a file path or the file's bytes.
        max_pixels: refuse images with more pixels than this (decompression bombs).
        min_side: if given, JPEGs decode at a reduced scale (DCT draft mode) that
            keeps the shorter side at least this long, and other large images are
            downscaled to it; the model only needs a few hundred pixels.
        max_bytes: refuse files larger than this.

    Returns:
        An RGB image with EXIF orientation applied and transparency on white.

    Raises:
        ImageDecodeError: empty, truncated, unreadable or non-image input.
        ImageTooLargeError: the file or its pixel count exceeds the limits.
    """
    _register_heif()
    data = _open_bytes(source, max_bytes)
    name = _describe(source)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's warning-level check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(
            f"{name}: not a recognised image; supported formats are {SUPPORTED_FORMATS}"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"{name}: unreadable image header ({exc})") from exc

    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {width * height / 1e6:.1f} megapixels, "
            f"the limit is {max_pixels / 1e6:.1f} megapixels"
        )

    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame
        if min_side and img.format == "JPEG":
            # Decodes at 1/2, 1/4 or 1/8 scale directly from the DCT: a 12 MP
            # photo then costs a fraction of a full decode.
            img.draft(img.mode, (min_side, min_side))
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: image has too many pixels ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: truncated or corrupt image data ({exc})") from exc

    orientation = _orientation(img)
    upright: Image.Image = _upright(img, name)
    rgb = to_rgb(upright)
    if min_side and min(rgb.size) > 2 * min_side:
        # Keep the shorter side >= min_side; reduce() is a fast box filter.
        factor = min(rgb.size) // min_side
        rgb = rgb.reduce(factor)
    # Full-resolution size as the photo is seen upright, before any reduction.
    rgb.info["original_size"] = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return rgb


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return 1


def _upright(img: Image.Image, name: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img) or img
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as exc:
        # A damaged EXIF block should not cost the photo; it is kept as stored.
        log.warning("%s: EXIF orientation ignored (%s)", name, exc)
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, ...


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    else:
        # 16-bit grey (and Pillow's 32-bit "I" holding 16-bit data): keep the top byte.
        scaled = arr.astype(np.float64) / 257.0
    grey = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")

