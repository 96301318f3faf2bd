"""Small shared helpers for files and time: atomic writes (temp file, fsync, rename, fsync folder) and UTC now."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


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


# Owner-only modes for what holds catalogue records, API key hashes and the audit trail.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(folder: Path) -> Path:
    """Create `folder` (and its parents) readable by its owner only; tighten it if it exists."""
    folder = Path(folder)
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    try:
        if folder.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
            os.chmod(folder, PRIVATE_DIR_MODE)
    except OSError as exc:
        log.warning("cannot make %s private (mode 0700): %s", folder, exc)
    return folder


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 if missing, or tighten an existing one (an SQLite
    database then keeps the mode, and SQLite gives its -wal and -shm files the same)."""
    path = Path(path)
    os.close(os.open(str(path), os.O_CREAT | os.O_RDONLY, PRIVATE_FILE_MODE))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
                os.chmod(p, PRIVATE_FILE_MODE)
        except FileNotFoundError:
            pass
        except OSError as exc:  # another user's file, a read-only disk: usable, but say it is too open
            log.warning("cannot make %s private (mode 0600): %s", p, exc)
    return path


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_iso() -> str:
    """Now in UTC as ISO-8601 to the second, the form stored in catalogues and logs."""
    return utc_now().isoformat(timespec="seconds")
