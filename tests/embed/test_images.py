"""The photo loader: every supported format comes out upright 8-bit RGB; hostile
input comes out as a typed error with a message a person can act on."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artefact.embed.errors import ImageDecodeError, ImageError, ImageTooLargeError
from artefact.embed.images import DEFAULT_MAX_PIXELS, load_image

T = Image.Transpose
EXIF_ORIENTATION = 0x0112

# Inverse of the transform a viewer applies for each EXIF orientation:
# stored = upright.transpose(STORE[o]) so that viewer(stored) == upright.
STORE = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,  # the viewer rotates 90 degrees clockwise
    7: T.TRANSVERSE,
    8: T.ROTATE_270,  # the viewer rotates 90 degrees counter-clockwise
}


# --------------------------------------------------------------------------- helpers


def photo(name: str = "chelsea") -> Image.Image:
    """A real photograph from skimage.data as RGB (same as conftest's `photo_image`)."""
    from skimage import data

    arr = np.asarray(getattr(data, name)())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")


def encode(img: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def marked_photo(name: str = "chelsea") -> Image.Image:
    """A real (landscape, asymmetric) photo with a pure red block in its top-left corner."""
    img = photo(name)
    arr = np.asarray(img).copy()
    arr[:40, :40] = (255, 0, 0)
    return Image.fromarray(arr, "RGB")


def mad(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference (0..255)."""
    assert a.size == b.size, f"sizes differ: {a.size} vs {b.size}"
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def assert_same_picture(loaded: Image.Image, expected: Image.Image, tol: float) -> None:
    """`loaded` is RGB, the size of `expected`, close to it and not a flipped/rotated copy."""
    assert loaded.mode == "RGB"
    assert loaded.size == expected.size
    d = mad(loaded, expected)
    assert d <= tol, f"mean abs difference {d:.2f} > {tol}"
    for wrong in (T.ROTATE_180, T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM):
        assert mad(loaded, expected.transpose(wrong)) > d + 15
    # The red marker (40 px of a 451x300 photo, scaled with it) is in the top-left corner.
    w, h = loaded.size
    corner = np.asarray(loaded)[int(h * 0.02) : int(h * 0.1), int(w * 0.01) : int(w * 0.07)]
    corner = corner.astype(int).mean(axis=(0, 1))
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60, corner


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif.tobytes()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@functools.lru_cache(maxsize=None)
def huge_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of width x height that is small in bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = []
    rows_per_block = max(1, (1 << 22) // len(row))
    for start in range(0, height, rows_per_block):
        idat.append(comp.compress(row * min(rows_per_block, height - start)))
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def assert_good_message(exc: BaseException, *words: str) -> None:
    msg = str(exc)
    assert msg.strip(), "error message is empty"
    assert "Traceback" not in msg and 'File "' not in msg, msg
    low = msg.lower()
    assert any(w.lower() in low for w in words), f"message {msg!r} names none of {words}"


@pytest.fixture(params=["bytes", "path"])
def as_source(request, tmp_path):
    """Turns file bytes into the loader's input: the bytes themselves or a file path."""

    def make(data: bytes, name: str = "photo.bin"):
        return data if request.param == "bytes" else write(tmp_path, name, data)

    return make


# --------------------------------------------------------------------------- formats

FORMATS = [
    # (Pillow format, file name, save kwargs, tolerance of the codec)
    ("JPEG", "p.jpg", {"quality": 95}, 5.0),
    ("PNG", "p.png", {}, 0.0),
    ("WEBP", "p.webp", {"quality": 90}, 5.0),
    ("WEBP", "p-lossless.webp", {"lossless": True}, 0.0),
    ("TIFF", "p.tif", {}, 0.0),
    ("TIFF", "p-lzw.tiff", {"compression": "tiff_lzw"}, 0.0),
    ("BMP", "p.bmp", {}, 0.0),
    ("GIF", "p.gif", {}, 8.0),
]


@pytest.mark.parametrize("fmt,name,kwargs,tol", FORMATS, ids=[f[1] for f in FORMATS])
def test_format_loads_upright_rgb(fmt, name, kwargs, tol, as_source):
    upright = marked_photo()
    src = as_source(encode(upright, fmt, **kwargs), name)
    img = load_image(src)
    assert_same_picture(img, upright, tol)
    assert img.info["original_size"] == upright.size


def test_heic_loads_upright_rgb(tmp_path, as_source):
    import pillow_heif

    pillow_heif.register_heif_opener()
    upright = marked_photo()
    path = tmp_path / "p.heic"
    upright.save(path, quality=90)  # format from the .heic suffix
    assert Image.open(path).format in ("HEIF", "HEIC")
    img = load_image(as_source(path.read_bytes(), "p.heic"))
    assert_same_picture(img, upright, 6.0)


def test_heic_orientation_is_applied_once(tmp_path):
    """libheif applies the rotation itself; the loader must not rotate a second time."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    upright = marked_photo()
    stored = upright.transpose(STORE[6])
    buf = io.BytesIO()
    stored.save(buf, "HEIF", quality=90, exif=exif_with_orientation(6))
    img = load_image(buf.getvalue())
    assert_same_picture(img, upright, 6.0)
    assert img.info["original_size"] == upright.size


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_first_frame(fmt, as_source):
    first = marked_photo()
    second = Image.fromarray(255 - np.asarray(photo("coffee").resize(first.size)), "RGB")
    data = encode(first, fmt, save_all=True, append_images=[second], duration=100, loop=0, **(
        {"lossless": True} if fmt == "WEBP" else {}
    ))
    assert Image.open(io.BytesIO(data)).n_frames == 2
    img = load_image(as_source(data, "anim." + fmt.lower()))
    assert_same_picture(img, first, 8.0)
    assert mad(img, second) > 40


def test_cmyk_jpeg(as_source):
    upright = marked_photo()
    data = encode(upright.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = load_image(as_source(data, "cmyk.jpg"))
    # Not inverted (Adobe CMYK JPEGs are stored inverted) and colours preserved.
    assert_same_picture(img, upright, 6.0)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_greyscale_keeps_brightness(fmt, as_source):
    width, height = 256, 40
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    arr = np.tile(ramp, (height, 1))
    arr[:, :8] = 5000  # a dark band: 5000/65535 of full scale, about 19/255
    data = encode(Image.fromarray(arr), fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    img = load_image(as_source(data, "grey16." + fmt.lower()))
    assert img.mode == "RGB" and img.size == (width, height)
    got = np.asarray(img).astype(int)
    # Grey: all three channels equal.
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    expected = np.tile(arr.astype(np.float64) / 257.0, (1, 1))
    assert np.abs(got[..., 0] - expected).max() <= 1.0
    assert abs(got[0, 0, 0] - 19) <= 1  # not clipped to white
    assert got[0, -1, 0] >= 254  # the brightest column is white
    assert 120 <= got[..., 0].mean() <= 135  # a ramp averages to mid-grey


def test_palette_png(as_source):
    upright = marked_photo()
    pal = upright.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    data = encode(pal, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "P"
    img = load_image(as_source(data, "pal.png"))
    assert_same_picture(img, upright, 8.0)


def test_palette_png_with_transparent_index_is_white():
    arr = np.zeros((40, 60), np.uint8)
    arr[:, 30:] = 1
    pal = Image.fromarray(arr, "P")
    pal.putpalette([0, 0, 255] + [0, 255, 0] + [0, 0, 0] * 254)
    data = encode(pal, "PNG", transparency=0)
    img = load_image(data)
    got = np.asarray(img)
    assert img.mode == "RGB"
    assert (got[:, :30] == 255).all()  # transparent index 0 (blue) -> white
    assert (got[:, 30:] == (0, 255, 0)).all()


def test_rgba_transparency_becomes_white(as_source):
    upright = marked_photo()
    rgba = upright.convert("RGBA")
    alpha = np.full((upright.height, upright.width), 255, np.uint8)
    w = upright.width
    alpha[:, w // 2 :] = 0  # right half fully transparent
    rgba.putalpha(Image.fromarray(alpha, "L"))
    img = load_image(as_source(encode(rgba, "PNG"), "rgba.png"))
    got = np.asarray(img).astype(int)
    assert img.mode == "RGB" and img.size == upright.size
    assert (got[:, w // 2 :] == 255).all()
    assert (got[:, : w // 2] == np.asarray(upright)[:, : w // 2]).all()


def test_rgba_half_transparent_black_is_mid_grey():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 128))
    got = np.asarray(load_image(encode(rgba, "PNG"))).astype(int)
    assert np.abs(got - 127).max() <= 2


def test_la_greyscale_with_alpha(as_source):
    grey = np.full((30, 40), 60, np.uint8)
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[:, 20:] = 0
    la = Image.merge("LA", [Image.fromarray(grey, "L"), Image.fromarray(alpha, "L")])
    data = encode(la, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "LA"
    img = load_image(as_source(data, "la.png"))
    got = np.asarray(img)
    assert img.mode == "RGB"
    assert (got[:, :20] == 60).all()
    assert (got[:, 20:] == 255).all()


def test_greyscale_jpeg_becomes_rgb():
    grey = photo("coins").convert("L")
    img = load_image(encode(grey, "JPEG"))
    got = np.asarray(img).astype(int)
    assert img.mode == "RGB" and img.size == grey.size
    assert np.abs(got[..., 0] - np.asarray(grey, int)).mean() < 3


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", [3, 6, 8, 2, 4, 5, 7])
def test_exif_orientation_is_applied(orientation, as_source):
    upright = marked_photo()
    stored = upright.transpose(STORE[orientation])
    data = encode(stored, "JPEG", quality=95, exif=exif_with_orientation(orientation))
    raw = Image.open(io.BytesIO(data))
    assert raw.size == stored.size and raw.getexif()[EXIF_ORIENTATION] == orientation
    img = load_image(as_source(data, f"o{orientation}.jpg"))
    assert_same_picture(img, upright, 5.0)
    assert img.info["original_size"] == upright.size


def test_orientation_1_and_no_exif_are_left_alone():
    upright = marked_photo()
    for data in (encode(upright, "JPEG", exif=exif_with_orientation(1)), encode(upright, "JPEG")):
        assert_same_picture(load_image(data), upright, 5.0)


# --------------------------------------------------------------------------- draft mode


@pytest.fixture(scope="module")
def big_upright() -> Image.Image:
    """A 4000x3000 upright photo (coffee, upscaled) with the red marker in its corner."""
    img = photo("coffee").resize((4000, 3000), Image.Resampling.BILINEAR)
    arr = np.asarray(img).copy()
    arr[:400, :400] = (255, 0, 0)
    return Image.fromarray(arr, "RGB")


def test_draft_mode_decodes_large_jpeg_small(big_upright, as_source):
    data = encode(big_upright, "JPEG", quality=85)
    img = load_image(as_source(data, "big.jpg"), min_side=448)
    assert img.mode == "RGB"
    assert 448 <= min(img.size) <= 2 * 448
    assert img.width * img.height <= 4000 * 3000 // 16
    assert img.width > img.height  # still landscape
    assert img.info["original_size"] == (4000, 3000)
    # Same picture, just smaller.
    assert_same_picture(img, big_upright.resize(img.size, Image.Resampling.BOX), 6.0)


def test_draft_mode_with_exif_rotation(big_upright):
    # Pixels stored 4000x3000 with orientation 6: the photo is a 3000x4000 portrait.
    data = encode(big_upright, "JPEG", quality=85, exif=exif_with_orientation(6))
    img = load_image(data, min_side=448)
    assert 448 <= min(img.size) <= 2 * 448
    assert img.height > img.width  # upright: portrait
    assert img.info["original_size"] == (3000, 4000)
    portrait = big_upright.transpose(T.ROTATE_270)  # what a viewer shows for orientation 6
    small = portrait.resize(img.size, Image.Resampling.BOX)
    d = mad(img, small)
    assert d <= 6.0
    assert mad(img, small.transpose(T.ROTATE_180)) > d + 15
    corner = np.asarray(img)[:20, -20:].astype(int).mean(axis=(0, 1))  # marker now top-right
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60, corner


def test_without_min_side_the_full_image_is_decoded(big_upright):
    img = load_image(encode(big_upright, "JPEG", quality=85))
    assert img.size == (4000, 3000)
    assert img.info["original_size"] == (4000, 3000)


def test_min_side_downscales_other_formats():
    big = marked_photo().resize((1600, 1200))
    img = load_image(encode(big, "PNG", compress_level=1), min_side=200)
    assert 200 <= min(img.size) <= 400
    assert img.info["original_size"] == (1600, 1200)
    assert_same_picture(img, big.resize(img.size, Image.Resampling.BOX), 6.0)


def test_min_side_never_upscales_or_shrinks_small_images():
    small = marked_photo()  # 451x300
    img = load_image(encode(small, "JPEG", quality=95), min_side=448)
    assert img.size == small.size


# --------------------------------------------------------------------------- hostile input


def test_empty_bytes():
    with pytest.raises(ImageDecodeError) as err:
        load_image(b"")
    assert_good_message(err.value, "empty")


def test_zero_byte_file(tmp_path):
    path = write(tmp_path, "empty.jpg", b"")
    with pytest.raises(ImageDecodeError) as err:
        load_image(path)
    assert_good_message(err.value, "empty")
    assert "empty.jpg" in str(err.value)


@pytest.mark.parametrize("min_side", [None, 64])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt, min_side, as_source):
    data = encode(marked_photo(), fmt)
    with pytest.raises(ImageDecodeError) as err:
        load_image(as_source(data[: len(data) // 2], "cut." + fmt.lower()), min_side=min_side)
    assert_good_message(err.value, "truncated", "corrupt")


@pytest.mark.parametrize("keep", [4, 12, 40])
def test_header_only(keep):
    data = encode(marked_photo(), "JPEG")[:keep]
    with pytest.raises(ImageDecodeError) as err:
        load_image(data)
    assert_good_message(err.value, "truncated", "corrupt", "unreadable", "not a recognised")


def test_text_file_named_jpg(tmp_path):
    path = write(tmp_path, "notes.jpg", b"Inventory: bronze statuette, 12 cm, stolen 1994.\n" * 20)
    with pytest.raises(ImageDecodeError) as err:
        load_image(path)
    assert_good_message(err.value, "not a recognised image")
    assert "notes.jpg" in str(err.value)
    assert "JPEG" in str(err.value)  # tells what would have worked


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(ImageDecodeError) as err:
        load_image(path)
    assert_good_message(err.value, "not found")
    assert "missing.jpg" in str(err.value)
    with pytest.raises(ImageDecodeError):
        load_image(str(path))


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageDecodeError) as err:
        load_image(tmp_path)
    assert_good_message(err.value, "not a regular file", "not found")


def test_decompression_bomb_is_refused(as_source):
    data = huge_png(30000, 30000)
    assert len(data) < 1_000_000  # small in bytes ...
    assert struct.unpack(">II", data[16:24]) == (30000, 30000)  # ... huge in pixels (IHDR)
    with pytest.raises(ImageTooLargeError) as err:
        load_image(as_source(data, "bomb.png"))
    assert_good_message(err.value, "pixels")


def test_image_above_our_pixel_limit_but_below_pillows(as_source):
    # 64 megapixels: over DEFAULT_MAX_PIXELS (50 M) but under Pillow's own error limit.
    data = huge_png(8000, 8000)
    with pytest.raises(ImageTooLargeError) as err:
        load_image(as_source(data, "big.png"))
    assert_good_message(err.value, "megapixels")
    assert "64.0" in str(err.value) and f"{DEFAULT_MAX_PIXELS / 1e6:.1f}" in str(err.value)


def test_lowered_max_pixels(as_source):
    data = encode(marked_photo(), "PNG")  # 451 x 300 = 135300 pixels
    with pytest.raises(ImageTooLargeError) as err:
        load_image(as_source(data, "p.png"), max_pixels=100_000)
    assert_good_message(err.value, "megapixels")
    assert load_image(as_source(data, "p2.png"), max_pixels=135_300).size == (451, 300)


def test_max_bytes(as_source):
    data = encode(marked_photo(), "PNG")
    with pytest.raises(ImageTooLargeError) as err:
        load_image(as_source(data, "p.png"), max_bytes=len(data) - 1)
    assert_good_message(err.value, "limit")
    assert str(len(data) - 1) in str(err.value)
    assert load_image(as_source(data, "p2.png"), max_bytes=len(data)).size == (451, 300)


def test_errors_share_a_base_class_and_name_the_source(tmp_path):
    assert issubclass(ImageDecodeError, ImageError) and issubclass(ImageTooLargeError, ImageError)
    with pytest.raises(ImageError) as err:
        load_image(b"GIF89a garbage")
    assert "uploaded photo" in str(err.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"<html>not found</html>", b"RIFF\x00\x00\x00\x00WEBP"],
    ids=["empty", "jpeg-soi", "png-magic", "html", "riff-webp"],
)
def test_no_traceback_in_messages(data):
    with pytest.raises(ImageError) as err:
        load_image(data)
    msg = str(err.value)
    assert msg.strip()
    assert "Traceback" not in msg and 'File "' not in msg and "\n" not in msg
