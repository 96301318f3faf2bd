"""The service's own files in the home folder: uploaded photos, thumbnails and evidence images.

Their names are made here and nowhere else. They are removed with their object once the
catalogue has committed the delete (a file outliving its row is harmless, a row outliving its
file is not), and `sweep_orphans` removes the ones no row refers to any more (a kill between
commit and removal, or files left by older versions). Bulk-ingested photos belong to the curator
and live outside the home folder: nothing here ever touches a file outside it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from artefact.api.http.audit import AuditLog
from artefact.index.catalogue import Catalogue
from artefact.index.errors import ObjectNotFoundError
from artefact.index.home import Home
from artefact.index.records import ImageRecord

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 320
_THUMBNAIL = re.compile(r"(\d+)-\d+\.jpg")
_EVIDENCE = re.compile(r"([0-9a-f]+)-(\d+)\.jpg")
_QUERY_PHOTO = re.compile(r"([0-9a-f]+)-q\d+\.jpg")
QUERY_PHOTO_SIDE = 800  # the query photos kept for a search's sheet: enough to print, small to keep


class ServiceFiles:
    """Paths of the files the service writes, for one home folder."""

    def __init__(self, home: Home) -> None:
        self.home = home

    def upload_folder(self, object_id: str) -> Path:
        """Photos uploaded for one object, each named by its SHA-256 (so written once, whole)."""
        return self.home.uploads / hashlib.sha256(object_id.encode()).hexdigest()[:16]

    def thumbnail(self, image_id: int, side: int = THUMBNAIL_SIDE) -> Path:
        return self.home.thumbnails / f"{image_id}-{side}.jpg"

    def evidence(self, search_id: str, rank: int) -> Path:
        return self.home.evidence / f"{search_id}-{int(rank)}.jpg"

    def query_photo(self, search_id: str, n: int) -> Path:
        """A query photo of a search, reduced, kept for its sheet (beside the evidence images, which show it too)."""
        return self.home.evidence / f"{search_id}-q{int(n)}.jpg"

    def is_upload(self, path: Path) -> bool:
        return _inside(path, self.home.uploads)

    def of_object(self, images: Sequence[ImageRecord], evidence: Iterable[tuple[str, int]]) -> list[Path]:
        """An object's files: its uploaded photos (never a bulk-ingested one), thumbnails and evidence images."""
        paths = [Path(i.path) for i in images if self.is_upload(Path(i.path))]
        if self.home.thumbnails.is_dir():
            for image in images:
                paths += self.home.thumbnails.glob(f"{int(image.image_id)}-*.jpg")
        paths += [self.evidence(search_id, rank) for search_id, rank in evidence]
        return paths

    def remove(self, paths: Iterable[Path]) -> int:
        """Delete files (missing ones are fine) and upload folders left empty; returns how many files went."""
        removed = 0
        folders: set[Path] = set()
        for path in paths:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:  # the sweep in `index check --repair` finds it later
                log.warning("could not remove %s: %s", path, exc)
                continue
            if self.is_upload(path) and path.parent != self.home.uploads:
                folders.add(path.parent)
        for folder in folders:
            try:
                folder.rmdir()
            except OSError:
                pass  # not empty: other photos of the object remain
        return removed


def _inside(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real.startswith(root + os.sep)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.is_dir() else []


def find_orphans(home: Home, catalogue: Catalogue, audit: AuditLog | None) -> list[Path]:
    """Files in the uploads, thumbnails and evidence folders that no catalogue row or search result refers to.

    Call it holding the library's writer lock: a create writes its photo files just before its commit.
    """
    images = catalogue.image_files()
    referenced = {os.path.realpath(p) for p in images.values()}
    orphans = [p for p in _files(home.uploads) if os.path.realpath(p) not in referenced]
    for path in _files(home.thumbnails):
        m = _THUMBNAIL.fullmatch(path.name)
        if m is None or int(m.group(1)) not in images:
            orphans.append(path)
    # A search's query photos stay as long as its record; evidence images as long as their subject too.
    files = _files(home.evidence)
    queries = {p: m.group(1) for p in files if (m := _QUERY_PHOTO.fullmatch(p.name))}
    searches = audit.existing(set(queries.values())) if audit is not None else set()
    orphans += [p for p, sid in queries.items() if sid not in searches]
    evidence = [(p, _EVIDENCE.fullmatch(p.name)) for p in files if p not in queries]
    subjects = audit.result_objects({m.group(1) for _, m in evidence if m}) if audit is not None else {}
    exists: dict[str, bool] = {}
    for path, m in evidence:
        subject = subjects.get((m.group(1), int(m.group(2)))) if m else None
        if subject is not None and subject not in exists:
            try:
                catalogue.object_pk(subject)
                exists[subject] = True
            except ObjectNotFoundError:
                exists[subject] = False
        if subject is None or not exists[subject]:
            orphans.append(path)
    return orphans


def sweep_orphans(home: Home, catalogue: Catalogue, audit: AuditLog | None, dry_run: bool = False) -> list[Path]:
    """Remove (or with `dry_run` only list) the orphaned files; empty upload folders go too."""
    orphans = find_orphans(home, catalogue, audit)
    if not dry_run and orphans:
        ServiceFiles(home).remove(orphans)
        log.info("removed %d orphaned files", len(orphans))
    return orphans


def sweep_home(home: Home, catalogue: Catalogue, dry_run: bool = False) -> list[Path]:
    """`sweep_orphans` for a command: with the home's audit log when there is one (without it, no search
    record names an evidence image, so none is kept). Call it holding the library's writer lock."""
    if not home.audit.is_file():
        return sweep_orphans(home, catalogue, None, dry_run)
    audit = AuditLog(home.audit, home.audit_photos, keep_photos=False, retention_days=0)
    try:
        return sweep_orphans(home, catalogue, audit, dry_run)
    finally:
        audit.close()
