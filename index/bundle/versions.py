"""Imported catalogue versions: each in its own folder, switched in by replacing one symbolic link.

A service holding the old catalogue keeps reading its files, which are never written by an
import; `Library.refresh()` sees the link point elsewhere and moves to the new catalogue and its
vectors in one step. Live SQLite files are never renamed over, so WAL files never get mixed up.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from artefact.embed.fileio import fsync_dir, utc_now
from artefact.index.home import Home

log = logging.getLogger(__name__)

INCOMING_PREFIX = ".incoming-"
# Left over when a home held a catalogue of its own before its first import.
LEGACY_SIDE_FILES = ("catalogue.sqlite-wal", "catalogue.sqlite-shm", "vectors.faiss", "vectors.json")


def new_staging(home: Home) -> Path:
    home.catalogue_versions.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=INCOMING_PREFIX, dir=home.catalogue_versions))


def install(home: Home, staging: Path, bundle_id: str) -> Path:
    """Give a finished staging folder its final name (unique even when a bundle is imported twice)."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    name = f"{bundle_id}-{stamp}"
    n = 1
    while (home.catalogue_versions / name).exists():
        n += 1
        name = f"{bundle_id}-{stamp}-{n}"
    final = home.catalogue_versions / name
    os.rename(staging, final)
    fsync_dir(home.catalogue_versions)
    return final


def switch(home: Home, version: Path) -> Path:
    """Point `catalogue.sqlite` at the catalogue in `version`, atomically; returns the previous target."""
    previous = home.current_catalogue()
    target = os.path.relpath(version / home.catalogue.name, home.root)  # relative: the home can be moved whole
    tmp = home.root / f".{home.catalogue.name}.{os.getpid()}.link"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, home.catalogue)
    fsync_dir(home.root)
    return previous


def prune(home: Home, previous: Path) -> list[Path]:
    """Remove versions other than the current and the previous one (a service may still read that)."""
    current = home.current_catalogue().parent
    keep = {current, previous.parent}
    removed = []
    if home.catalogue_versions.is_dir():
        for folder in home.catalogue_versions.iterdir():
            if folder.is_dir() and folder.resolve() not in {k.resolve() for k in keep}:
                if folder.name.startswith(INCOMING_PREFIX):
                    continue  # another import's work in progress (it holds the write lock, but be safe)
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    if previous.parent.resolve() != home.root.resolve():
        # The home's own pre-bundle catalogue is no longer the previous one: its files can go.
        for name in LEGACY_SIDE_FILES:
            side = home.root / name
            if side.is_file() and not side.is_symlink():
                side.unlink()
                removed.append(side)
    if removed:
        log.info("removed %d old catalogue versions or files", len(removed))
    return removed
