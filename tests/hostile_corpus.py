"""Hostile uploads, made on the fly (no committed binaries): thin, huge-dimension, truncated,
wrong-format, many-frame and metadata-bomb files, each with the outcome the service owes it.

Importable from any test (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, PngImagePlugin

# What a request carrying the file must get: 2xx (decodes; a first frame is fine), or one of these.
OK = (200, 201)
TOO_LARGE, UNSUPPORTED, UNUSABLE = 413, 415, 422


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    expect: tuple[int, ...]  # statuses a search upload may get; anything 5xx is always a failure
    kind: str  # thin | bomb | truncated | wrong-format | many-frame | metadata

    @property
    def decodes(self) -> bool:
        return any(s < 300 for s in self.expect)


def _photo(w: int = 256, h: int = 192, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height with almost no pixel data (a pixel-flood bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def thin_png(width: int, height: int) -> bytes:
    """A real, complete PNG of a thin strip: a hundred bytes for 16000x2."""
    return _save(Image.new("RGB", (width, height), (200, 30, 30)), "PNG")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to claim width x height."""
    data = bytearray(_save(_photo(64, 48), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_screen(width: int, height: int) -> bytes:
    """A tiny GIF whose logical screen claims width x height."""
    data = bytearray(_save(Image.new("P", (8, 8)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def tiff_header_only(width: int, height: int) -> bytes:
    """A TIFF whose first IFD claims width x height (strip data absent)."""
    data = bytearray(_save(_photo(16, 16), "TIFF"))
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd : ifd + 2])[0]
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, typ = struct.unpack("<HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = width if tag == 256 else height
            data[at + 8 : at + 12] = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
            if typ == 3 and value > 0xFFFF:
                data[at + 2 : at + 4] = struct.pack("<H", 4)
                data[at + 8 : at + 12] = struct.pack("<I", value)
    return bytes(data)


def eps_file() -> bytes:
    """Encapsulated PostScript written by hand: opening it must never start Ghostscript."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
        b"newpath 0 0 moveto 64 64 lineto stroke\n(/etc/passwd) (r) file pop\nshowpage\n%%EOF\n"
    )


def many_frame_gif(frames: int = 20000, side: int = 4) -> bytes:
    """An animated GIF of `frames` frames: one frame Pillow wrote, repeated at shifting offsets."""
    rng = np.random.default_rng(1)
    two = [Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L") for _ in range(2)]
    data = _save(two[0], "GIF", save_all=True, append_images=two[1:], duration=10, loop=0)
    second = data.rindex(b"\x21\xf9\x04")  # graphic control extension of the last frame
    head, frame = data[:second], data[second:-1]  # -1: the trailer byte (0x3b)
    descriptor = frame.index(b"\x2c")
    out = bytearray(head)
    for i in range(frames):
        f = bytearray(frame)
        f[descriptor + 1 : descriptor + 5] = struct.pack("<HH", i % side, (i // side) % side)
        out += f
    return bytes(out + b"\x3b")


def many_page_tiff(pages: int = 20000, side: int = 16) -> bytes:
    """A little-endian greyscale TIFF of `pages` pages (IFDs), all sharing one strip of pixels."""
    strip = bytes(range(256))[: side * side].ljust(side * side, b"\x80")
    tags = 8
    ifd_size = 2 + 12 * tags + 4
    first = 8 + len(strip)
    out = bytearray(b"II*\x00" + struct.pack("<I", first) + strip)
    for page in range(pages):
        at = first + page * ifd_size
        nxt = at + ifd_size if page + 1 < pages else 0
        entries = [(256, 3, side), (257, 3, side), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                   (273, 4, 8), (278, 3, side), (279, 4, len(strip))]
        out += struct.pack("<H", tags)
        for tag, typ, value in entries:
            out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
        out += struct.pack("<I", nxt)
    return bytes(out)


def png_ztxt_bomb() -> bytes:
    """A photo PNG with a 16 KB zTXt chunk that inflates to 16 MB (Pillow caps text chunks at 1 MB)."""
    body = zlib.compress(b"A" * (16 << 20), 9)
    png = _save(_photo(), "PNG")
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + _png_chunk(b"zTXt", b"Comment\x00\x00" + body) + png[iend:]


def png_many_text_chunks(n: int = 2000) -> bytes:
    info = PngImagePlugin.PngInfo()
    for i in range(n):
        info.add_text(f"k{i}", "x" * 1000)
    return _save(_photo(), "PNG", pnginfo=info)


def jpeg_huge_icc() -> bytes:
    """A photo JPEG carrying a 4 MB ICC profile (split over many APP2 segments)."""
    return _save(_photo(), "JPEG", quality=85, icc_profile=b"\x00" * (4 << 20))


def jpeg_exif_junk() -> bytes:
    """A photo JPEG whose EXIF block is 60 KB of IFD entries pointing everywhere."""
    exif = Image.Exif()
    for tag in range(0x9000, 0x9000 + 3000):
        exif[tag] = "y" * 15
    return _save(_photo(), "JPEG", quality=85, exif=exif.tobytes()[:65000])


def jpeg_bad_exif_orientation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 99  # no such orientation
    return _save(_photo(), "JPEG", quality=85, exif=exif.tobytes())


def _wrong_format(fmt: str) -> bytes:
    img = _photo(64, 48)
    if fmt in ("MSP", "XBM"):
        img = img.convert("1")
    elif fmt == "SPIDER":
        img = img.convert("F")
    return _save(img, fmt)


# Formats Pillow reads but the service does not accept (the allow-list is JPEG, PNG, WebP, TIFF,
# BMP, GIF, HEIF/HEIC, AVIF): each must be refused before any decoder of its kind runs.
REFUSED_FORMATS = ("PCX", "TGA", "ICO", "SGI", "PPM", "DDS", "QOI", "IM", "MSP", "XBM", "SPIDER", "JPEG2000")


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[Hostile, ...]:
    """Every hostile file, built once per process (a few MB in all, about a second)."""
    good = _save(_photo(), "JPEG", quality=85)
    items = [
        Hostile("thin-wide.png", thin_png(16000, 2), (UNUSABLE,), "thin"),
        Hostile("thin-tall.png", thin_png(2, 16000), (UNUSABLE,), "thin"),
        Hostile("thin-21to1.png", thin_png(2100, 100), (UNUSABLE,), "thin"),
        Hostile("thin-header.jpg", jpeg_with_size(60000, 3), (UNUSABLE, TOO_LARGE), "thin"),
        Hostile("bomb-60000.png", png_header_only(60000, 60000), (TOO_LARGE,), "bomb"),
        Hostile("bomb-20000.png", png_header_only(20000, 20000), (TOO_LARGE,), "bomb"),
        Hostile("bomb-65000.jpg", jpeg_with_size(65000, 65000), (TOO_LARGE,), "bomb"),
        Hostile("bomb-screen.gif", gif_screen(65535, 65535), (TOO_LARGE,), "bomb"),
        Hostile("bomb-100000.tif", tiff_header_only(100000, 100000), (TOO_LARGE,), "bomb"),
        Hostile("truncated.jpg", good[: len(good) // 2], (UNUSABLE,), "truncated"),
        Hostile("truncated.png", _save(_photo(), "PNG")[:3000], (UNUSABLE,), "truncated"),
        Hostile("header-only.jpg", good[:40], (UNUSABLE, UNSUPPORTED), "truncated"),
        Hostile("empty.jpg", b"", (UNUSABLE,), "truncated"),
        Hostile("eps.jpg", eps_file(), (UNSUPPORTED,), "wrong-format"),
        Hostile("html.jpg", b"<html><body>404 not found</body></html>" * 20, (UNSUPPORTED,), "wrong-format"),
        Hostile("zip.jpg", b"PK\x03\x04" + b"\x00" * 200, (UNSUPPORTED,), "wrong-format"),
        *(Hostile(f"wrong.{fmt.lower()}.jpg", _wrong_format(fmt), (UNSUPPORTED,), "wrong-format") for fmt in REFUSED_FORMATS),
        Hostile("many-frames.gif", many_frame_gif(), OK, "many-frame"),
        Hostile("many-pages.tif", many_page_tiff(), OK, "many-frame"),
        Hostile("ztxt-bomb.png", png_ztxt_bomb(), (*OK, UNUSABLE), "metadata"),
        Hostile("text-chunks.png", png_many_text_chunks(), (*OK, UNUSABLE), "metadata"),
        Hostile("huge-icc.jpg", jpeg_huge_icc(), (*OK, UNUSABLE), "metadata"),
        Hostile("exif-junk.jpg", jpeg_exif_junk(), (*OK, UNUSABLE), "metadata"),
        Hostile("bad-orientation.jpg", jpeg_bad_exif_orientation(), OK, "metadata"),
    ]
    return tuple(items)
