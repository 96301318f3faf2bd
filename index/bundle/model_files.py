"""Model files in a bundle: what of HOME/models travels (weights, exported runtimes, cache links) and how it lands."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from artefact.embed.fileio import fsync_dir
from artefact.embed.models import file_sha256
from artefact.index.bundle.manifest import MODELS_PREFIX, Link

# Local bookkeeping of the model cache, not model content: never carried. OpenVINO's compiled
# blobs are made for one CPU (embed/runtimes/openvino_runtime.py); a post compiles its own.
SKIP_NAMES = {"checksums.json", ".locks", "openvino-compiled"}
SKIP_SUFFIXES = (".tmp", ".incomplete", ".lock")


def _skipped(name: str) -> bool:
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def collect(models: Path) -> tuple[list[tuple[str, Path]], list[Link]]:
    """Files (bundle path, file) and links under `models`; links that leave the folder are followed."""
    files: list[tuple[str, Path]] = []
    links: list[Link] = []
    if not models.is_dir():
        return files, links
    root = models.resolve()
    for folder, dirs, names in os.walk(models):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        here = Path(folder)
        for name in sorted(names) + [d for d in dirs if (here / d).is_symlink()]:
            if _skipped(name):
                continue
            path = here / name
            rel = MODELS_PREFIX + path.relative_to(models).as_posix()
            if path.is_symlink():
                target = os.readlink(path)
                inside = not os.path.isabs(target) and Path(os.path.realpath(path)).is_relative_to(root)
                if inside and path.exists():
                    links.append(Link(rel, PurePosixPath(target).as_posix()))
                    continue
                if not path.is_file():
                    continue  # a dangling link or a linked folder outside: nothing to carry
            if path.is_file():
                files.append((rel, path))
    return files, links


def holds_weights(models: Path, sha256: str) -> bool:
    """Whether a file under `models` has these weights (checksums memoised in the folder)."""
    if not models.is_dir() or not sha256:
        return False
    for path in models.rglob("*"):
        if path.is_file() and not path.is_symlink() and not _skipped(path.name) and path.stat().st_size > 0:
            if file_sha256(path, models) == sha256:
                return True
    return False


def install(staged: Path, models: Path, links: list[Link]) -> int:
    """Move staged model files into `models` (each rename atomic) and recreate the cache's links.

    Existing files of the same name are replaced: a model file's name is its identity in the
    cache, so a newer bundle's file is the right one. Returns the number of files placed.
    """
    placed = 0
    if staged.is_dir():
        for path in sorted(p for p in staged.rglob("*") if p.is_file()):
            dest = models / path.relative_to(staged)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            placed += 1
    for link in links:
        dest = models / link.path[len(MODELS_PREFIX):]
        if dest.is_symlink() and os.readlink(dest) == link.target:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link")
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(link.target, tmp)
        os.replace(tmp, dest)
    if placed or links:
        fsync_dir(models)
    return placed
