"""Hostile photos at the decoder (issue 10, findings 2-4): thin strips, huge pictures, formats
outside the allow-list, and the whole hostile corpus; time and memory measured in a fresh process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from artefact.embed.errors import (
    ImageAspectError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
)
from artefact.embed.images import (
    ACCEPTED_FORMATS,
    DEFAULT_MAX_PIXELS,
    MAX_ASPECT_RATIO,
    SUPPORTED_FORMATS,
    decode_budget_bytes,
    decode_slots,
    load_image,
)
from artefact.embed.preprocess import PreprocessConfig, load_photo, prepare
from hostile_corpus import REFUSED_FORMATS, TOO_LARGE, UNSUPPORTED, corpus, eps_file, png_header_only, thin_png

MIB = 1024 * 1024

# Runs one decode in a fresh interpreter and reports its own peak memory growth (ru_maxrss is
# per process and only grows, so the test process, full of earlier tests, cannot measure it).
_PROBE = r"""
import json, resource, sys, time
from PIL import Image
from artefact.embed.preprocess import PreprocessConfig, load_photo, prepare
from artefact.index.verification import extract
job = json.loads(sys.argv[1])
cfg = PreprocessConfig(resize_mode=job.get("mode", "shortest"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
out = {}
try:
    if job["what"] == "prepare":
        img = Image.new("RGB", tuple(job["size"]), (90, 160, 30))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        out["shape"] = list(prepare(img, cfg).shape)
    elif job["what"] == "extract":
        img = Image.new("RGB", tuple(job["size"]), (90, 160, 30))
        out["keypoints"] = len(extract(img, "sift"))
    else:
        img, arr = load_photo(job["path"], cfg)
        out["size"], out["shape"] = list(img.size), list(arr.shape)
except Exception as exc:
    out["error"] = type(exc).__name__
    out["message"] = str(exc)
out["seconds"] = time.perf_counter() - t
out["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def probe(**job: object) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(job)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- finding 2: thin images


@pytest.mark.parametrize("size", [(16000, 2), (2, 16000), (2100, 100), (100, 2100)])
def test_absurd_proportions_are_refused_at_the_header(size):
    data = thin_png(*size)
    assert len(data) < 5000  # a few hundred bytes ...
    t = time.perf_counter()
    with pytest.raises(ImageAspectError) as err:
        load_photo(data, PreprocessConfig())
    assert time.perf_counter() - t < 0.5  # ... refused before any pixel is decoded
    msg = str(err.value)
    assert f"{size[0]}x{size[1]}" in msg and f"{MAX_ASPECT_RATIO}:1" in msg, msg
    assert isinstance(err.value, ImageError) and not isinstance(err.value, ImageTooLargeError)


@pytest.mark.parametrize("size", [(2000, 100), (100, 2000), (640, 32)])
def test_proportions_up_to_the_limit_are_accepted(size):
    img, arr = load_photo(thin_png(*size), PreprocessConfig())
    assert img.info["original_size"] == size
    assert arr.shape == (224, 224, 3)


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_prepare_work_is_bounded_by_the_output(mode):
    """A 16000x2 picture handed straight to `prepare` (no loader check) costs what a normal photo does."""
    thin = probe(what="prepare", size=[16000, 2], mode=mode)
    normal = probe(what="prepare", size=[640, 480], mode=mode)
    assert thin["shape"] == [224, 224, 3] == normal["shape"]
    assert thin["peak_mib"] < normal["peak_mib"] + 10, (thin, normal)
    assert thin["seconds"] < 0.25 + 5 * normal["seconds"], (thin, normal)


@pytest.mark.parametrize("size", [(2000, 100), (100, 2000), (300, 15)])
def test_local_features_of_thin_photos_are_bounded(size):
    """verification.extract resizes too: at the largest proportions allowed its work stays small."""
    out = probe(what="extract", size=list(size))
    assert "error" not in out, out
    assert out["peak_mib"] < 40 and out["seconds"] < 2, out


# --------------------------------------------------------------------------- finding 3: large images


def test_large_rgba_png_is_shrunk_before_it_is_converted(tmp_path):
    """24 MP RGBA (96 MB decoded): shrinking in the image's own mode first keeps the peak near one
    decoded copy, not the five full-size copies of convert-then-shrink."""
    arr = np.zeros((4000, 6000, 4), np.uint8)
    arr[..., 0] = np.arange(6000) % 256
    arr[..., 3] = 200
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path, compress_level=1)
    del arr
    out = probe(what="load", path=str(path))
    assert out["size"][0] < 1500 and out["shape"] == [224, 224, 3], out
    decoded_mib = 6000 * 4000 * 4 / MIB
    assert out["peak_mib"] < 2.3 * decoded_mib, out


@pytest.fixture(scope="module")
def phone_200mp(tmp_path_factory) -> Path:
    """A 200 MP JPEG (16320x12240, the largest phone sensors), greyscale so making it stays cheap."""
    path = tmp_path_factory.mktemp("big") / "phone-200mp.jpg"
    img = Image.new("L", (16320, 12240), 128)
    img.paste(Image.linear_gradient("L").resize((8000, 6000)), (4000, 3000))
    img.save(path, "JPEG", quality=80)
    return path


def test_200_megapixel_phone_jpeg_decodes_small(phone_200mp):
    """Draft decoding reads it at 1/8 scale: accepted, and the cap is about decoded pixels."""
    out = probe(what="load", path=str(phone_200mp))
    assert "error" not in out, out
    assert 480 <= min(out["size"]) <= 960 and out["size"][0] > out["size"][1], out
    assert out["peak_mib"] < 40, out
    assert out["seconds"] < 5, out


def test_the_cap_counts_decoded_pixels():
    """A PNG cannot be decoded at reduced scale: one above the cap is refused at its header."""
    side = int((DEFAULT_MAX_PIXELS * 1.1) ** 0.5)
    t = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as err:
        load_image(png_header_only(side, side))
    assert time.perf_counter() - t < 0.2
    assert "megapixels" in str(err.value) and f"{DEFAULT_MAX_PIXELS / 1e6:.1f}" in str(err.value)


def test_a_jpeg_beyond_any_camera_is_refused_even_when_draft_would_shrink_it():
    from hostile_corpus import jpeg_with_size

    with pytest.raises(ImageTooLargeError):
        load_image(jpeg_with_size(30000, 30000), min_side=480)


def test_decode_slots_are_bounded_by_memory_as_well_as_cores():
    budget = decode_budget_bytes(DEFAULT_MAX_PIXELS)
    assert budget >= DEFAULT_MAX_PIXELS * 4  # at least one decoded RGBA copy
    assert decode_slots(cpus=16, available_bytes=None, max_pixels=DEFAULT_MAX_PIXELS) == 16
    assert decode_slots(cpus=16, available_bytes=3 * budget + 1, max_pixels=DEFAULT_MAX_PIXELS) == 3
    assert decode_slots(cpus=2, available_bytes=100 * budget, max_pixels=DEFAULT_MAX_PIXELS) == 2
    assert decode_slots(cpus=8, available_bytes=budget // 2, max_pixels=DEFAULT_MAX_PIXELS) == 1  # never 0
    # A lower pixel cap makes each decode cheaper, so more fit.
    assert decode_slots(cpus=64, available_bytes=4 * budget, max_pixels=DEFAULT_MAX_PIXELS // 4) > 4


# --------------------------------------------------------------------------- finding 4: allow-list


@pytest.mark.parametrize("fmt", REFUSED_FORMATS)
def test_formats_outside_the_allow_list_are_refused(fmt):
    img = Image.new("RGB", (64, 48), (20, 120, 200))
    if fmt in ("MSP", "XBM"):
        img = img.convert("1")
    elif fmt == "SPIDER":
        img = img.convert("F")
    data = encode(img, fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would read it
    with pytest.raises(UnsupportedImageError) as err:
        load_image(data)
    assert SUPPORTED_FORMATS in str(err.value)


def test_eps_never_reaches_ghostscript(monkeypatch):
    calls: list[object] = []

    def recorder(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("Ghostscript was started for an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", recorder)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", recorder)
    for source in (eps_file(), encode(Image.new("RGB", (32, 32)), "EPS")):
        with pytest.raises(UnsupportedImageError):
            load_image(source)
    assert calls == []


@pytest.mark.parametrize("fmt", ["AVIF", "MPO"])
def test_allowed_formats_beyond_the_classics_load(fmt):
    if fmt not in ACCEPTED_FORMATS + ("MPO",):  # JPEG's opener reads MPO
        pytest.skip(f"{fmt} is not readable by this Pillow build")
    frames = [Image.new("RGB", (96, 64), (200, 40, 40)), Image.new("RGB", (96, 64), (40, 40, 200))]
    kwargs = {"save_all": True, "append_images": frames[1:]} if fmt == "MPO" else {}
    img = load_image(encode(frames[0], fmt, **kwargs))
    assert img.size == (96, 64) and img.mode == "RGB"
    assert np.asarray(img)[..., 0].mean() > 150  # the first picture


def test_supported_formats_text_names_every_accepted_format():
    for name in ("JPEG", "PNG", "WebP", "TIFF", "BMP", "GIF", "HEIC"):
        assert name in SUPPORTED_FORMATS


# --------------------------------------------------------------------------- the whole corpus


def _status(exc: ImageError) -> int:
    if isinstance(exc, ImageTooLargeError):
        return TOO_LARGE
    if isinstance(exc, UnsupportedImageError):
        return UNSUPPORTED
    return 422


@pytest.mark.parametrize("item", corpus(), ids=lambda h: h.name)
def test_hostile_corpus_at_the_decoder(item):
    t = time.perf_counter()
    try:
        img, arr = load_photo(item.data, PreprocessConfig())
    except ImageError as exc:
        assert _status(exc) in item.expect, f"{item.name}: {type(exc).__name__}: {exc}"
        assert "Traceback" not in str(exc) and "\n" not in str(exc)
    else:
        assert item.decodes, f"{item.name} decoded to {img.size}, expected {item.expect}"
        assert arr.shape == (224, 224, 3)
    assert time.perf_counter() - t < 2.0, item.name


def test_only_image_errors_escape_the_loader():
    """Everything in the corpus fails, if it fails, as an ImageError (never OSError, ValueError ...)."""
    for item in corpus():
        try:
            load_image(item.data, min_side=480)
        except ImageError:
            pass
