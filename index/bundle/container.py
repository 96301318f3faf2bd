"""The bundle file: a plain tar written in one canonical form, and a strict streaming reader for it.

Members are `manifest.json`, `manifest.sha256`, optionally `manifest.sig`, then `parts/000001`...
in manifest order (real paths live in the signed manifest, so member names are short and fixed).
The reader accepts only that exact form: every header must be what the writer would produce and
all padding must be zero, so that one changed byte anywhere in the file is noticed, not only in
the hashed contents. Memory stays bounded: contents are streamed in 1 MiB chunks.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import IO, BinaryIO, Callable, Literal

from artefact.index.bundle.errors import BundleFormatError, BundleIntegrityError

BLOCK = 512
CHUNK = 1 << 20
MANIFEST_MEMBER = "manifest.json"
DIGEST_MEMBER = "manifest.sha256"
SIGNATURE_MEMBER = "manifest.sig"
TAR_FORMAT: Literal[1] = tarfile.GNU_FORMAT  # GNU: sizes above 8 GiB still fit in one header (base-256)
ENCODING = "utf-8"


def part_member(index: int) -> str:
    """Member name of the index-th part (1-based)."""
    return f"parts/{index:06d}"


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class _HashingReader:
    """Feeds what tarfile reads from a file through SHA-256 (one read, no second pass)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


class BundleWriter:
    """Writes members in the canonical form; the caller gives them in the documented order."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="w", format=TAR_FORMAT, encoding=ENCODING)

    def add_bytes(self, name: str, data: bytes) -> None:
        import io

        self.tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))

    def add_file(self, name: str, path: Path, size: int, sha256: str) -> None:
        """Stream a file in, checking it is still the file that was hashed for the manifest.

        Raises:
            BundleIntegrityError: the file changed while the bundle was written.
        """
        with open(path, "rb") as f:
            reader = _HashingReader(f)
            try:
                self.tar.addfile(_tarinfo(name, size), reader)  # type: ignore[arg-type]
            except OSError as exc:
                raise BundleIntegrityError(f"{path} changed while the bundle was written ({exc}); export again") from exc
        if reader.size != size or reader.hash.hexdigest() != sha256:
            raise BundleIntegrityError(f"{path} changed while the bundle was written; export again")

    def close(self) -> None:
        self.tar.close()


class BundleReader:
    """Reads a bundle member by member, refusing anything the writer would not have produced."""

    def __init__(self, fileobj: BinaryIO, name: str = "bundle") -> None:
        self.f = fileobj
        self.name = name
        self.offset = 0

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise BundleIntegrityError(
                f"{self.name} ends early, inside {what} (byte {self.offset + len(data)}): the file is "
                "truncated; copy it again from the issuing agency's medium"
            )
        self.offset += n
        return data

    def next_member(self) -> tuple[str, int] | None:
        """The next member's (name, size), or None at the end of the archive."""
        at = self.offset
        try:
            block = self.f.read(BLOCK)
        except OSError as exc:
            raise BundleFormatError(f"cannot read {self.name}: {exc}") from exc
        self.offset += len(block)
        if not block:
            raise BundleIntegrityError(f"{self.name} ends without the end-of-archive marker: the file is truncated")
        if len(block) < BLOCK:
            raise BundleIntegrityError(f"{self.name} ends inside a header at byte {at}: the file is truncated")
        if block == bytes(BLOCK):
            self._check_trailer()
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, ENCODING, "strict")
        except (tarfile.HeaderError, UnicodeDecodeError) as exc:
            raise BundleIntegrityError(
                f"{self.name}: damaged header at byte {at} ({exc}); the file was changed or corrupted"
            ) from exc
        if info.tobuf(TAR_FORMAT, ENCODING, "strict") != block or _tarinfo(info.name, info.size).tobuf(
            TAR_FORMAT, ENCODING, "strict"
        ) != block:
            raise BundleIntegrityError(
                f"{self.name}: the header of {info.name!r} at byte {at} is not as written by artefact-search; "
                "the file was changed or corrupted"
            )
        return info.name, int(info.size)

    def read_member(self, size: int, sink: Callable[[bytes], None], what: str) -> None:
        """Stream `size` bytes of content to `sink`, then check the block padding is zero."""
        left = size
        while left:
            chunk = self._read_exact(min(CHUNK, left), what)
            sink(chunk)
            left -= len(chunk)
        pad = (-size) % BLOCK
        if pad and self._read_exact(pad, f"the padding after {what}") != bytes(pad):
            raise BundleIntegrityError(
                f"{self.name}: non-zero bytes in the padding after {what}; the file was changed or corrupted"
            )

    def read_small(self, size: int, limit: int, what: str) -> bytes:
        if size > limit:
            raise BundleFormatError(f"{self.name}: {what} is {size} bytes, more than the {limit} allowed")
        buf = bytearray()
        self.read_member(size, buf.extend, what)
        return bytes(buf)

    def _check_trailer(self) -> None:
        """After the first zero block: only zeros to the end, at least two blocks in all."""
        zero_blocks = 1
        while True:
            data = self.f.read(CHUNK)
            if not data:
                break
            if data.count(0) != len(data):
                bad = self.offset + next(i for i, b in enumerate(data) if b)
                raise BundleIntegrityError(
                    f"{self.name}: unexpected bytes after the end of the archive (byte {bad}); "
                    "the file was changed or corrupted"
                )
            self.offset += len(data)
            zero_blocks += len(data) // BLOCK
        if zero_blocks < 2 or self.offset % BLOCK:
            raise BundleIntegrityError(f"{self.name}: the end-of-archive marker is cut short; the file is truncated")
