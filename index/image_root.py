"""Where a manifest's photos live: a local (or shared) folder, or an object-store URI read through pyarrow's filesystems."""

from __future__ import annotations

import os
import posixpath
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Union

from artefact.index.errors import ImageRootError
from artefact.index.manifest import IMAGE_SUFFIXES, resolve_images

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

# A photo's location as the catalogue stores it: an absolute local path, or a URI such as
# s3://bucket/key for photos that stay in an object store.
Location = str
Resolved = tuple[str, Union[Location, None], Union[str, None]]  # (reference, location, problem)


def is_uri(root: str | Path) -> bool:
    """True for `scheme://...` roots (s3, gs, hdfs, file); a Path never is one."""
    return isinstance(root, str) and "://" in root


class ImageRoot(Protocol):
    """The photos root of one ingest: resolves manifest references and reads file sizes and times."""

    def resolve(self, refs: list[str]) -> Iterator[Resolved]:
        """Expand folders, refuse escapes: yields (reference, location or None, problem or None)."""
        ...

    def stat(self, location: Location) -> tuple[int, int]:
        """(size in bytes, modification time in ns); raises OSError when the file cannot be read."""
        ...


class LocalRoot:
    """A folder on this machine or on a shared file system (NFS, SMB) every worker mounts at the same path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def resolve(self, refs: list[str]) -> Iterator[Resolved]:
        for ref, path, problem in resolve_images(refs, self.root):
            yield ref, (str(path) if path is not None else None), problem

    def stat(self, location: Location) -> tuple[int, int]:
        st = os.stat(location)
        return st.st_size, st.st_mtime_ns


class ObjectStoreRoot:
    """A prefix in an object store (s3://, gs://, hdfs://) or a file:// URI, through pyarrow.fs.

    pyarrow is already there with Ray Data and carries S3, GCS and HDFS clients of its own (no
    s3fs/gcsfs to install); credentials come from the usual environment (AWS_*, GOOGLE_*).
    A file:// URI is stored as its plain local path, so a site switching between the two
    spellings of one folder never gets two catalogue rows for one photo.
    """

    def __init__(self, uri: str) -> None:
        self.fs, path = _filesystem(uri)
        self.scheme = uri.split("://", 1)[0].lower()
        self.root = posixpath.normpath(path).rstrip("/") or "/"

    def location(self, path: str) -> Location:
        return path if self.scheme == "file" else f"{self.scheme}://{path}"

    def resolve(self, refs: list[str]) -> Iterator[Resolved]:
        from pyarrow.fs import FileSelector, FileType

        for ref in refs:
            candidate = posixpath.normpath(posixpath.join(self.root, ref.lstrip("/")))
            if not candidate.startswith(self.root.rstrip("/") + "/"):
                yield ref, None, f"path is outside the images root {self.location(self.root)}: refused"
                continue
            try:
                info = self.fs.get_file_info(candidate)
                if info.type == FileType.Directory:
                    found = self.fs.get_file_info(FileSelector(candidate, recursive=True))
                    files = sorted(f.path for f in found
                                   if f.type == FileType.File and posixpath.splitext(f.path)[1].lower() in IMAGE_SUFFIXES)
                    if not files:
                        yield ref, None, "folder holds no image files"
                    for f in files:
                        ref_f = posixpath.relpath(f, self.root)
                        yield (ref_f, None, "links outside the images root: refused") if self._escapes(f) \
                            else (ref_f, self.location(f), None)
                    continue
            except OSError as exc:  # pyarrow's I/O errors (access denied, no such bucket) are OSErrors
                yield ref, None, f"cannot list ({exc})"
                continue
            if info.type != FileType.File:
                yield ref, None, "file not found"
                continue
            if self._escapes(candidate):
                yield ref, None, "links outside the images root: refused"
                continue
            yield ref, self.location(candidate), None

    def _escapes(self, path: str) -> bool:
        """A local file reached through a symbolic link that leaves the root (object stores have no links)."""
        if self.scheme != "file":
            return False
        return not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(self.root))

    def stat(self, location: Location) -> tuple[int, int]:
        from pyarrow.fs import FileType

        info = self.fs.get_file_info(location.split("://", 1)[1] if is_uri(location) else location)
        if info.type != FileType.File:
            raise FileNotFoundError(f"no such file: {location}")
        return int(info.size or 0), int(info.mtime_ns or 0)


def open_root(root: str | Path) -> ImageRoot:
    """The photos root named on the command line: a URI goes to the object store, anything else is a folder.

    Raises:
        ImageRootError: an unknown scheme, or a store that cannot be reached.
    """
    if is_uri(root):
        return ObjectStoreRoot(str(root))
    return LocalRoot(Path(root))


def read_location(location: Location) -> bytes:
    """The bytes of one photo, wherever it lives (raises OSError when it cannot be read)."""
    if not is_uri(location):
        return Path(location).read_bytes()
    try:
        fs, path = _filesystem(location)
    except ImageRootError as exc:
        raise OSError(str(exc)) from exc
    with fs.open_input_stream(path) as f:
        data: bytes = f.read()
    return data


# Schemes whose pyarrow paths are "bucket/key" (or a plain local path for file), so a location
# is simply scheme://path; HDFS and others name a host outside the path and are not offered.
SCHEMES = ("s3", "gs", "gcs", "file")


def _filesystem(uri: str) -> tuple["FileSystem", str]:
    scheme, _, rest = uri.partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ImageRootError(f"{uri}: unsupported images root scheme {scheme}:// (use a folder, or one of "
                             + ", ".join(f"{s}://" for s in SCHEMES) + ")")
    if scheme == "file":
        rest = "/" + rest.lstrip("/")
    try:
        fs = _store_for(scheme, "" if scheme == "file" else rest.split("/", 1)[0])
    except ImportError as exc:
        raise ImageRootError(f"{uri}: object-store roots need pyarrow (pip install 'artefact-search[scale]')") from exc
    except (ValueError, OSError) as exc:  # ArrowInvalid is a ValueError: bad URI, unknown bucket region
        raise ImageRootError(f"cannot open the images root {uri}: {exc}") from exc
    return fs, rest


@lru_cache(maxsize=16)
def _store_for(scheme: str, bucket: str) -> Any:
    """One filesystem client per store and bucket in a process (an S3 client resolves its region once)."""
    from pyarrow.fs import FileSystem

    fs, _ = FileSystem.from_uri(f"{scheme}://{bucket}" if bucket else f"{scheme}:///")
    return fs
