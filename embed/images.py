"""One photo loader for catalogue and query images: path or bytes in, upright RGB out."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from artefact.embed.errors import (
    ImageAspectError,
    ImageDecodeError,
    ImageTooLargeError,
    UnsupportedImageError,
)

log = logging.getLogger(__name__)

ImageSource = Union[str, Path, bytes]

# Pixels decoded into memory, at most. JPEGs are read at 1/2, 1/4 or 1/8 scale (draft mode) when
# a smaller picture will do, so the cap is about decoded pixels, not the file's: a 200 MP phone
# JPEG decodes to 2040x1530 (3 MP, ~15 MB). PNG, TIFF, WebP, HEIC ... are decoded whole, and
# 50 MP covers 48 MP phone HEICs and most camera TIFFs (raise ARTEFACT_MAX_PIXELS for larger scans).
DEFAULT_MAX_PIXELS = 50_000_000
# Pixels a file may declare even when it is decoded smaller: a JPEG's entropy decoding still walks
# every block (200 MP: ~2 s), so there is a ceiling just above the largest phone sensors.
MAX_FILE_PIXELS = 250_000_000
# Long side : short side. Panoramas reach about 10:1; a 16000x2 strip is an attack, not a photo.
MAX_ASPECT_RATIO = 20

# Pillow refuses images above twice this before we could decode them at reduced scale (its
# default, 179 MP, is below a 200 MP phone photo). Our checks in `load_image` replace it; Pillow's
# own error stays as a backstop above ours.
Image.MAX_IMAGE_PIXELS = MAX_FILE_PIXELS


def _avif_readable() -> bool:
    try:
        return bool(features.check("avif"))
    except (ValueError, KeyError):  # a Pillow that does not know the feature at all
        return False


# Pillow format ids read, decided by content, never by file name; everything else Pillow knows
# (PCX, TGA, ICO, SGI, PPM, DDS, QOI, EPS -- which would run Ghostscript --, ...) is refused before
# its decoder runs. "JPEG" also opens JPEGs with a multi-picture index (many phones' photos), which
# Pillow then names MPO.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "HEIF") + (
    ("AVIF",) if _avif_readable() else ()
)
SUPPORTED_FORMATS = "JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF" + (", AVIF" if "AVIF" in ACCEPTED_FORMATS else "")
# Formats that can decode at reduced scale (JPEG's DCT scaling).
_DRAFT_FORMATS = ("JPEG", "MPO")

# What each EXIF orientation needs to be seen upright (as ImageOps.exif_transpose does it).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes reduce() cannot work in, and the smallest mode each is shrunk in instead.
_REDUCIBLE_AS = {"1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}

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

    Every check that can be made on the header is made before any pixel is decoded; large
    images are shrunk in their own mode before they are converted, so one decode costs about
    one decoded copy of the picture.

    Args:
        source: a file path or the file's bytes.
        max_pixels: refuse images that would decode to more pixels than this (JPEGs are
            counted at the reduced scale they are decoded at when `min_side` is given).
        min_side: if given, JPEGs decode at a reduced scale (DCT draft mode) that
            keeps the shorter side at least this long, and other large images are
            downscaled to it; the model only needs a few hundred pixels.
        max_bytes: refuse files larger than this.

    Returns:
        An RGB image with EXIF orientation applied and transparency on white;
        `info["original_size"]` is the full-resolution size as seen upright.

    Raises:
        UnsupportedImageError: not an image in one of ACCEPTED_FORMATS.
        ImageDecodeError: empty, truncated or unreadable input.
        ImageTooLargeError: the file or its pixel count exceeds the limits.
        ImageAspectError: proportions beyond MAX_ASPECT_RATIO.
    """
    _register_heif()
    data = _open_bytes(source, max_bytes)
    name = _describe(source)
    img = _open(data, name)
    width, height = img.size
    _check_header(name, width, height, max_pixels)
    try:
        if min_side and img.format in _DRAFT_FORMATS:
            # Decodes at 1/2, 1/4 or 1/8 scale directly from the DCT: a 12 MP photo then costs
            # a fraction of a full decode, a 200 MP one about 3 MP.
            img.draft(img.mode, (min_side, min_side))
        _check_pixels(name, *img.size, max_pixels, "decoded")
        img.load()
        orientation = _orientation(img)
        small = _shrink(img, min_side)
        upright = small.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else small
        rgb = to_rgb(upright)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: image has too many pixels ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: truncated or corrupt image data ({exc})") from exc
    rgb.info["original_size"] = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return rgb


def _open(data: bytes, name: str) -> Image.Image:
    """Identify the format by content among the accepted ones only (no other decoder runs)."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limits replace Pillow's warning-level check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(
            f"{name}: not a recognised image in an accepted format; the accepted formats are {SUPPORTED_FORMATS}"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: unreadable image header ({exc})") from exc


def _check_header(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: image has no pixels ({width}x{height})")
    _check_pixels(name, width, height, max(max_pixels, MAX_FILE_PIXELS), "in the file")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageAspectError(
            f"{name}: {width}x{height} is a strip, not a photograph: its long side is "
            f"{max(width, height) / min(width, height):.0f} times its short side, the limit is "
            f"{MAX_ASPECT_RATIO}:1; crop the photo to the object"
        )


def _check_pixels(name: str, width: int, height: int, limit: int, counted: str) -> None:
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {width * height / 1e6:.1f} megapixels {counted}, "
            f"the limit is {limit / 1e6:.1f} megapixels"
        )


def _shrink(img: Image.Image, min_side: int | None) -> Image.Image:
    """Keep the shorter side >= min_side with reduce() (a fast box filter) in the image's own
    mode, so the conversion to RGB afterwards works on the small picture."""
    if not min_side or min(img.size) <= 2 * min_side:
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in _REDUCIBLE_AS:
        img = img.convert(_REDUCIBLE_AS[img.mode])
    return img.reduce(min(img.size) // min_side)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as exc:
        # A damaged EXIF block should not cost the photo; it is kept as stored.
        log.warning("EXIF orientation ignored (%s)", exc)
        return 1


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



# -- decode budget ---------------------------------------------------------------------------


def decode_budget_bytes(max_pixels: int) -> int:
    """Worst-case memory of one decode at the pixel cap: an RGBA picture (4 bytes a pixel) and
    the premultiplied copy reduce() makes of it; what follows is model-sized and small."""
    return 8 * max_pixels


def decode_slots(cpus: int, available_bytes: int | None, max_pixels: int) -> int:
    """How many photos may decode at once: one per core, and no more than memory holds at the cap."""
    by_memory = cpus if available_bytes is None else available_bytes // decode_budget_bytes(max_pixels)
    return max(1, min(cpus, by_memory))


def available_memory_bytes() -> int | None:
    """Memory this process can still take: the smaller of the host's MemAvailable and what its
    cgroup (a container's limit) has left; None where neither can be read."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:  # v1 says "no limit" with a huge number
            found.append(max(0, int(limit) - int(usage)))
        break
    return min(found) if found else None
