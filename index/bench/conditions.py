"""Checkpoint photo conditions: deterministic, graded transforms that turn a catalogue photo into a query.

Each condition is one small function `f(img, severity, rng) -> img` registered with
`@condition(name, description)`. Severity runs from 1 (mild) to 3 (harsh); all
randomness comes from `rng`, which `apply()` derives from (seed, condition,
severity, key), so the same arguments always give the same pixels.

To add a condition, write one function below and decorate it; the benchmark
builder, the evaluation breakdown and the notebook pick it up by name.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SEVERITIES = (1, 2, 3)
Transform = Callable[[Image.Image, int, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Condition:
    """A named checkpoint photo condition."""

    name: str
    description: str
    fn: Transform


CONDITIONS: dict[str, Condition] = {}


def condition(name: str, description: str) -> Callable[[Transform], Transform]:
    """Register a transform under `name` (decorator)."""

    def register(fn: Transform) -> Transform:
        CONDITIONS[name] = Condition(name, description, fn)
        return fn

    return register


def rng_for(seed: int, name: str, severity: int, key: str = "") -> np.random.Generator:
    """A generator that depends only on its arguments (crc32, not Python's salted hash)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity, zlib.crc32(key.encode())])


def apply(name: str, img: Image.Image, severity: int, seed: int = 0, key: str = "") -> Image.Image:
    """Apply condition `name` at `severity` (1-3) to an RGB image; deterministic in (seed, key).

    Raises:
        ValueError: unknown condition or severity out of range.
    """
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    out = CONDITIONS[name].fn(img.convert("RGB"), severity, rng_for(seed, name, severity, key))
    return out.convert("RGB")


def _pick(severity: int, values: tuple[float, float, float]) -> float:
    return values[severity - 1]


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8), "RGB")


def _fill(rng: np.random.Generator) -> tuple[int, int, int]:
    """A dull table / tray colour for areas a transform uncovers."""
    base = rng.integers(60, 200)
    return tuple(int(np.clip(base + rng.integers(-25, 26), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points `dst` back to input points `src`."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coeffs = np.linalg.solve(np.asarray(rows, dtype=np.float64), src.reshape(8).astype(np.float64))
    return coeffs.tolist()


# -- geometry -----------------------------------------------------------------
@condition("perspective", "camera tilted: the object seen obliquely (keystone perspective)")
def perspective(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    t = _pick(severity, (0.08, 0.16, 0.26))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    jitter = rng.uniform(0.3, 1.0, size=(4, 2)) * t * np.array([w, h])
    side = rng.integers(4)  # which edge recedes
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    dst = src.copy()
    for c in ((side, (side + 1) % 4)):
        dst[c] += inward[c] * jitter[c]
    dst += rng.uniform(-0.02, 0.02, size=(4, 2)) * np.array([w, h])
    return img.transform((w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(src, dst),
                         Image.Resampling.BICUBIC, fillcolor=_fill(rng))


@condition("rotation", "in-plane rotation (photo taken sideways or at an angle)")
def rotation(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    lo, hi = ((8, 20), (25, 50), (60, 120))[severity - 1]
    angle = float(rng.uniform(lo, hi) * rng.choice([-1, 1]))
    return img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=_fill(rng))


@condition("partial_view", "only part of the object in frame (crop)")
def partial_view(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    keep = _pick(severity, (0.8, 0.6, 0.42))  # fraction of each side kept
    cw, ch = max(8, round(w * keep)), max(8, round(h * keep))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


@condition("scale", "object far away: few pixels on it, upsampled by the phone")
def scale(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    f = _pick(severity, (0.35, 0.18, 0.09)) * rng.uniform(0.9, 1.1)
    small = img.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.BILINEAR)


# -- light and colour -----------------------------------------------------------
@condition("colour_cast", "white balance off: warm / cool / green cast")
def colour_cast(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    s = _pick(severity, (0.15, 0.3, 0.5))
    gains = 1.0 + rng.uniform(-s, s, size=3)
    return _img(_arr(img) * gains)


@condition("low_light", "dim light: dark, low contrast, noisy")
def low_light(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    gain = _pick(severity, (0.45, 0.25, 0.12))
    a = (_arr(img) / 255.0) ** 1.3 * 255.0 * gain
    a += rng.normal(0, 2.0 + 2.0 * severity, size=a.shape)
    return _img(a)


@condition("glare", "specular glare: a bright washed-out spot (glass case, flash)")
def glare(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    r = _pick(severity, (0.15, 0.25, 0.4)) * max(w, h)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ar = rng.uniform(0.5, 1.0)
    d2 = ((xx - cx) / r) ** 2 + ((yy - cy) / (r * ar)) ** 2
    m = np.exp(-2.0 * d2)[..., None] * _pick(severity, (0.6, 0.8, 0.95))
    return _img(a * (1 - m) + 255.0 * m)


# -- optics and sensor ----------------------------------------------------------
@condition("motion_blur", "hand shake: linear motion blur")
def motion_blur(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    length = max(3, round(_pick(severity, (0.015, 0.035, 0.07)) * max(w, h)))
    theta = rng.uniform(0, np.pi)
    pad = length
    p = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    acc = np.zeros_like(a)
    for t in np.linspace(-length / 2, length / 2, length):
        dx, dy = int(round(t * np.cos(theta))), int(round(t * np.sin(theta)))
        acc += p[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return _img(acc / length)


@condition("focus_blur", "out of focus: Gaussian defocus blur")
def focus_blur(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    radius = _pick(severity, (0.006, 0.014, 0.03)) * max(img.size) * rng.uniform(0.9, 1.1)
    return img.filter(ImageFilter.GaussianBlur(radius=max(0.5, radius)))


@condition("noise", "sensor noise: grainy phone photo (luma + chroma noise)")
def noise(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    a = _arr(img)
    sigma = _pick(severity, (8.0, 18.0, 35.0))
    luma = rng.normal(0, sigma, size=a.shape[:2])[..., None]
    chroma = rng.normal(0, sigma * 0.5, size=a.shape)
    return _img(a + luma + chroma)


@condition("jpeg", "heavy JPEG recompression (forwarded by messaging apps)")
def jpeg(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    q = int(_pick(severity, (30, 15, 6)))
    out = img
    for quality in (q + int(rng.integers(0, 10)), q):  # sent on twice
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out = Image.open(buf).convert("RGB")
    return out


# -- scene ------------------------------------------------------------------------
def clutter_background(size: tuple[int, int], rng: np.random.Generator, items: int) -> Image.Image:
    """A synthetic cluttered table: textured surface with random boxes, papers, cables."""
    w, h = size
    base = np.asarray(_fill(rng), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.sin(xx / rng.uniform(3, 9) + np.sin(yy / rng.uniform(15, 40)) * 3) * 12
    a = base + grain[..., None] + rng.normal(0, 6, size=(h, w, 3))
    bg = _img(a)
    d = ImageDraw.Draw(bg)
    for _ in range(items):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.4) * w, y0 + rng.uniform(0.05, 0.4) * h
        kind = rng.integers(3)
        if kind == 0:
            d.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            d.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            d.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 8)))
    return bg


@condition("clutter", "object on a cluttered background (table, bags, papers), smaller in frame")
def clutter(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    frac = _pick(severity, (0.7, 0.5, 0.33))  # share of the frame's long side the object takes
    canvas_long = max(w, h)
    cw, ch = (canvas_long, round(canvas_long * 0.75)) if rng.random() < 0.5 else (round(canvas_long * 0.75), canvas_long)
    bg = clutter_background((cw, ch), rng, items=int(6 * severity + rng.integers(0, 5)))
    s = frac * max(cw, ch) / max(w, h)
    s = min(s, 0.95 * cw / w, 0.95 * ch / h)
    obj = img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BICUBIC)
    x = int(rng.integers(0, cw - obj.width + 1))
    y = int(rng.integers(0, ch - obj.height + 1))
    bg.paste(obj, (x, y))
    return bg


@condition("occlusion", "partly hidden by packing material (bubble wrap, brown tape)")
def occlusion(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    cover = _pick(severity, (0.15, 0.3, 0.5))
    mask = np.zeros((h, w), dtype=bool)
    # Bubble wrap: a translucent whitish sheet with round highlights over one side.
    side = rng.integers(4)
    depth = cover * rng.uniform(0.8, 1.2)
    if side == 0:
        mask[:, : round(w * depth)] = True
    elif side == 1:
        mask[:, w - round(w * depth) :] = True
    elif side == 2:
        mask[: round(h * depth), :] = True
    else:
        mask[h - round(h * depth) :, :] = True
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pitch = max(6.0, 0.05 * max(w, h))
    bubbles = (np.cos(xx * 2 * np.pi / pitch) * np.cos(yy * 2 * np.pi / pitch) + 1) / 2
    sheet = 200 + 55 * bubbles[..., None]
    alpha = 0.65
    a = np.where(mask[..., None], a * (1 - alpha) + sheet * alpha, a)
    # Brown tape: an opaque band across the object, angle at random.
    width = max(4.0, 0.1 * severity * min(w, h))
    theta = rng.uniform(0, np.pi)
    c = rng.uniform(0.3, 0.7, size=2) * np.array([w, h])
    dist = np.abs((xx - c[0]) * np.sin(theta) - (yy - c[1]) * np.cos(theta))
    tape = dist < width / 2
    brown = np.array([150, 110, 60], dtype=np.float32) + rng.normal(0, 8, size=3)
    a = np.where(tape[..., None], brown * 0.85 + a * 0.15, a)
    return _img(a)
