"""Small shared helpers for files and time: atomic writes (temp file, fsync, rename, fsync folder) and UTC now."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable: without this a crash can bring back the old name."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return  # some filesystems do not allow opening a folder; nothing more can be done there
    try:
        os.fsync(fd)
    except OSError:
        pass  # fsync on a directory is refused on some filesystems: the rename itself still happened
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """Yield a temp file path beside `path`; once written it is fsynced and renamed over
    `path` (and the folder fsynced), so readers never see half a file. On error the temp
    file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_iso() -> str:
    """Now in UTC as ISO-8601 to the second, the form stored in catalogues and logs."""
    return utc_now().isoformat(timespec="seconds")
