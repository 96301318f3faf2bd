"""Where a store's files live and how a save is committed: one manifest names them all.

Every store file except the manifest is written once under a fresh name and never
changed, so a process that loaded an older manifest keeps working on its files while
another saves. Saving takes a lock beside the manifest, writes the new files, swaps the
manifest atomically, then removes the files that no manifest names any more.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from artefact.embed.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


def manifest_path(index_path: Path) -> Path:
    """The manifest beside a store's main file (`vectors.faiss` -> `vectors.json`)."""
    return index_path.with_suffix(".json")


def file_prefix(index_path: Path) -> str:
    """Store files other than the legacy flat file are named `<stem>-<token>.<ext>`."""
    return index_path.stem


def build_folder(index_path: Path) -> Path:
    """Where `optimize` builds a new store until it is ready (resumable, invisible to readers)."""
    return index_path.parent / f".{index_path.stem}-build"


@contextmanager
def save_lock(index_path: Path) -> Iterator[None]:
    """Serialise saves of one store across processes (readers never take it)."""
    index_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(index_path.with_suffix(".lock")), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_manifest(index_path: Path) -> dict[str, Any] | None:
    path = manifest_path(index_path)
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()))


def commit(index_path: Path, manifest: dict[str, Any]) -> None:
    """Swap in a manifest (caller holds `save_lock`), then drop files no manifest names."""
    atomic_write_bytes(manifest_path(index_path), json.dumps(manifest, indent=2, sort_keys=True).encode())
    collect_garbage(index_path, manifest)


def referenced(manifest: dict[str, Any]) -> set[str]:
    files = manifest.get("files") or {}
    names = {v for k, v in files.items() if isinstance(v, str)}
    for key in ("full", "rerank"):
        entry = files.get(key) or {}
        names.update(name for name, _ in entry.get("segments", []))
        if entry.get("loc"):
            names.add(entry["loc"])
    return names


def data_files(index_path: Path, manifest: dict[str, Any]) -> set[str]:
    """The data files a manifest's store uses: the ones it names, or the legacy flat file beside it."""
    return referenced(manifest) if manifest.get("files") else {index_path.name}


def disk_bytes(index_path: Path) -> int:
    """Bytes on disk of the store in use: its main file or the files its manifest names."""
    names = data_files(index_path, read_manifest(index_path) or {})
    total = 0
    for name in names:
        try:
            total += (index_path.parent / name).stat().st_size
        except OSError:
            pass
    return total


def collect_garbage(index_path: Path, manifest: dict[str, Any]) -> None:
    keep = referenced(manifest)
    prefix = file_prefix(index_path) + "-"
    for p in index_path.parent.iterdir():
        stale = p.name.startswith(prefix) and p.name not in keep
        if p == index_path and manifest.get("files"):
            stale = True  # a legacy flat file left behind by a switch to another kind
        if stale and p.is_file():
            try:
                p.unlink()
            except OSError as exc:  # another process may have removed it first
                log.debug("could not remove %s: %s", p, exc)


def in_use(index_path: Path) -> set[str]:
    """Names of the files the store at `index_path` uses now, its manifest included (none: empty)."""
    manifest = read_manifest(index_path)
    if manifest is None:
        return set()
    return data_files(index_path, manifest) | {manifest_path(index_path).name}


def copy_store(index_path: Path, target: Path, **manifest_changes: Any) -> set[str]:
    """Copy the store in use into folder `target` (same file names), whatever its kind.

    Store files never change once written, so they are hard-linked where the file system allows
    (a bundle export or import of a million-photo store then costs no copy); the manifest is
    written afresh with `manifest_changes` applied. The save lock is held meanwhile, so a save
    cannot remove a file between reading the manifest and linking it.

    Returns:
        The names copied, manifest included; empty when there are no store files here to copy
        (none saved yet, or vectors kept elsewhere, as in Milvus): the target then builds its
        store from the catalogue's vectors.
    """
    with save_lock(index_path):
        manifest = read_manifest(index_path)
        if manifest is None:
            return set()
        names = data_files(index_path, manifest)
        if not all((index_path.parent / name).is_file() for name in names):
            return set()
        for name in sorted(names):
            src, dst = index_path.parent / name, target / name
            try:
                os.link(src, dst)
            except OSError:  # another file system, or links not allowed there
                shutil.copyfile(src, dst)
        manifest.update(manifest_changes)
        (target / manifest_path(index_path).name).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return names | {manifest_path(index_path).name}
