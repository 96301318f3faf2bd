"""Bulk ingest: stream a manifest, decode photos in worker processes, embed in batches, commit resumably."""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, Union

import numpy as np

from artefact.embed.allocator import reuse_freed_buffers
from artefact.embed.errors import ArtefactError, ImageError
from artefact.embed.fileio import utc_now
from artefact.embed.images import DEFAULT_MAX_PIXELS
from artefact.embed.models import ModelDescription
from artefact.embed.preprocess import PreprocessConfig, load_photo
from artefact.index.catalogue import Catalogue, KnownImage
from artefact.index.home import Home
from artefact.index.library import Library
from artefact.index.image_root import ImageRoot, Location, open_root, read_location
from artefact.index.manifest import read_manifest
from artefact.index.verification import DEFAULT_KIND, FeatureRow, Features
from artefact.index.verification import extract as extract_features

log = logging.getLogger(__name__)


class IngestEmbedder(Protocol):
    description: ModelDescription
    preprocess: PreprocessConfig

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass
class Problem:
    object_id: str
    file: str
    problem: str
    kind: str = "error"  # error (skipped) | warning (indexed anyway)


@dataclass
class IngestReport:
    objects_created: int = 0
    objects_updated: int = 0
    objects_unchanged: int = 0
    images_added: int = 0
    images_replaced: int = 0
    images_unchanged: int = 0
    images_failed: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    report_path: str | None = None

    @property
    def images_per_second(self) -> float:
        done = self.images_added + self.images_replaced
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects_created": self.objects_created,
            "objects_updated": self.objects_updated,
            "objects_unchanged": self.objects_unchanged,
            "images_added": self.images_added,
            "images_replaced": self.images_replaced,
            "images_unchanged": self.images_unchanged,
            "images_failed": self.images_failed,
            "duplicates": self.duplicates,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "report": self.report_path,
            "problems": [p.__dict__ for p in self.problems],
        }


@dataclass
class PhotoTask:
    """A photo the manifest names that is new or changed: to decode, embed and commit."""

    object_id: str
    object_pk: int
    ref: str
    location: Location  # absolute local path, or an object-store URI
    known: KnownImage | None  # the catalogued photo at this location, if any (replaced when changed)
    mtime_ns: int


@dataclass
class PreparedPhoto:
    """A decoded photo ready to embed and store; `replaces` names the image it supersedes."""

    object_pk: int
    object_id: str
    ref: str
    path: Path | str
    sha256: str
    size_bytes: int
    mtime_ns: int
    array: np.ndarray
    width: int
    height: int
    replaces: int | None = None
    features: FeatureRow | None = None


def write_photos(catalogue: Catalogue, photos: Sequence[PreparedPhoto], xb: np.ndarray
                 ) -> tuple[list[int], list[int], list[Problem]]:
    """Write embedded photos (vectors and features included) inside the caller's transaction.

    Returns the new image ids, the ids of the images they replace, and warnings about photos
    identical to ones already catalogued. The caller then calls `follow_photos` once committed.
    """
    new_ids: list[int] = []
    old_ids: list[int] = []
    problems: list[Problem] = []
    for photo, vec in zip(photos, xb):
        if photo.replaces is not None:
            catalogue.remove_image(photo.replaces)
            old_ids.append(photo.replaces)
        for other_id, other_obj in catalogue.images_with_sha(photo.sha256)[:1]:
            problems.append(
                Problem(photo.object_id, photo.ref, f"same photo as image {other_id} of object {other_obj}", "warning")
            )
        image_id = catalogue.add_image(
            photo.object_pk, str(photo.path), photo.sha256, photo.size_bytes, photo.mtime_ns,
            photo.width, photo.height, vec,
        )
        if photo.features is not None:
            catalogue.set_features(image_id, photo.features)
        new_ids.append(image_id)
    return new_ids, old_ids, problems


def follow_photos(library: Library, new_ids: Sequence[int], old_ids: Sequence[int], xb: np.ndarray) -> None:
    """After `write_photos` committed: the in-memory vector index follows the catalogue, and the
    local features move from catalogue rows into the feature store (a kill before that leaves the
    rows, which the next open moves)."""
    library.vectors.remove(np.asarray(old_ids, dtype=np.int64))
    library.add_vectors(np.asarray(new_ids, dtype=np.int64), xb)
    library.mark_synced()
    library.adopt_features(list(new_ids), replaced=list(old_ids))


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo file read, hashed, decoded and prepared by a worker (see `decode_file`)."""

    sha256: str
    size_bytes: int
    array: np.ndarray  # the model input, uint8 HxWx3
    width: int  # full-resolution size, upright
    height: int
    features: Features | None  # local features, when the index stores them


@dataclass(frozen=True)
class DecodeFailure:
    """A photo file that could not be used, and why (in words for the ingest report)."""

    reason: str


Decoded = Union[DecodedPhoto, DecodeFailure]


def decode_file(path: str, cfg: PreprocessConfig, max_pixels: int, feature_kind: str | None = None) -> Decoded:
    """Worker-side: read, hash, decode, prepare one photo (and extract its local features).

    The one per-photo step of every ingest: in-process decode workers and Ray's transforms
    (index/distributed_ingest.py) both call it. `path` is a local path or an object-store URI.
    Never raises for bad images: returns a `DecodeFailure` instead.
    """
    try:
        data = read_location(path)
    except OSError as exc:
        return DecodeFailure(f"cannot read file ({exc.strerror or exc})")
    sha = hashlib.sha256(data).hexdigest()
    try:
        img, arr = load_photo(data, cfg, max_pixels=max_pixels)
    except ImageError as exc:
        return DecodeFailure(str(exc).replace("uploaded photo: ", ""))
    w, h = img.info.get("original_size", img.size)
    feats = extract_features(img, feature_kind) if feature_kind else None
    return DecodedPhoto(sha, len(data), arr, int(w), int(h), feats)


def prepare_decode_worker() -> None:
    """Set up a process that decodes photos (ingest's decode workers, Ray's transforms).

    OpenCV runs on one thread: the parallelism is the worker processes, and each one's own
    thread pool would only make them fight over the same cores. Freed image buffers are kept
    for the next photo instead of going back to the kernel (embed/allocator.py).
    """
    reuse_freed_buffers()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # no OpenCV: no local features either
        pass


class _Decoder:
    """Ordered, bounded pipeline of decode jobs; in-process when workers == 0."""

    def __init__(self, workers: int, cfg: PreprocessConfig, max_pixels: int, inflight: int,
                 feature_kind: str | None = None) -> None:
        self.cfg, self.max_pixels, self.feature_kind = cfg, max_pixels, feature_kind
        self.pool = mp.get_context("spawn").Pool(workers, initializer=prepare_decode_worker) if workers > 0 else None
        self.inflight = max(1, inflight)

    def run(self, tasks: Iterator[PhotoTask]) -> Iterator[tuple[PhotoTask, Decoded]]:
        if self.pool is None:
            for t in tasks:
                yield t, decode_file(t.location, self.cfg, self.max_pixels, self.feature_kind)
            return
        queue: deque[tuple[PhotoTask, Any]] = deque()
        for t in tasks:
            queue.append((t, self.pool.apply_async(decode_file, (t.location, self.cfg, self.max_pixels, self.feature_kind))))
            if len(queue) >= self.inflight:
                task, res = queue.popleft()
                yield task, res.get()
        while queue:
            task, res = queue.popleft()
            yield task, res.get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def count_image_refs(manifest: Path) -> int:
    """Cheap first pass for the progress bar's total (folders count once)."""
    try:
        return sum(max(1, len(r.images)) for r in read_manifest(manifest))
    except ArtefactError:
        return 0


def ingest_manifest(
    library: Library,
    embedder: IngestEmbedder,
    manifest: Path,
    images_root: Path | str,
    *,
    workers: int | None = None,
    batch_size: int = 64,
    save_every_s: float = 30.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    actor: str = "cli",
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    local_features: str | None = DEFAULT_KIND,
) -> IngestReport:
    """Index every object and photo of a manifest; only new or changed photos are embedded.

    Safe to kill at any point: each batch commits atomically in SQLite (vectors
    included) and the FAISS file is reconciled from it on the next open.

    Args:
        images_root: folder the manifest's photo paths are relative to, or an object-store
            URI (s3://bucket/prefix, gs://..., file://...; see index/image_root.py).
        workers: decoding processes (default: every core when local features are extracted,
            else cores - 1; 0 decodes in-process).
        batch_size: photos per model forward pass and per catalogue commit.
        save_every_s: how often the FAISS file is rewritten during a long run.
        on_batch: called with the number of photos committed so far (tests, progress UIs).
        local_features: kind of local features stored for geometric verification
            (sift, orb) or None; an index keeps the kind it was built with.

    Raises:
        IndexMismatchError: the library was built with another model.
        ManifestError: unreadable manifest.
        ImageRootError: an object-store root that cannot be opened.
    """
    run = IngestRun(library, embedder.description, manifest, images_root, local_features=local_features,
                    save_every_s=save_every_s, progress=progress, on_batch=on_batch)
    if workers is None:
        # With local features the decoders carry most of the CPU work (SIFT costs 2-5x the
        # model's time per photo in a fast runtime, benchmarks/README.md), so every core
        # decodes and the model runs in between; without them one core is left to the model.
        cores = os.cpu_count() or 2
        workers = cores if run.feature_kind else max(1, cores - 1)
    cfg = embedder.preprocess
    batch: list[tuple[PhotoTask, DecodedPhoto]] = []

    def flush() -> None:
        if batch:
            run.commit(batch, embedder.embed_prepared([d.array for _, d in batch]))
            batch.clear()

    decoder = _Decoder(workers, cfg, max_pixels, inflight=max(2 * batch_size, 8 * workers), feature_kind=run.feature_kind)
    with run:
        try:
            for task, result in decoder.run(run.tasks()):
                photo = run.take(task, result)
                if photo is not None:
                    batch.append((task, photo))
                    if len(batch) >= batch_size:
                        flush()
            flush()
            run.backfill(cfg, max_pixels)
        finally:
            decoder.close()
    return run.report


class IngestRun:
    """The driver's side of one ingest, the same for in-process and Ray ingest (index/distributed_ingest.py).

    Plans the photo tasks (objects upserted, unchanged photos skipped before any decoding),
    takes each decoded photo (a failure reported, a merely touched file not re-embedded) and
    commits embedded batches in one transaction each. Used as a context manager: it holds the
    library's writer lock, and on leaving saves the index, closes the progress bar and writes
    the problem report.
    """

    def __init__(self, library: Library, model: ModelDescription, manifest: Path, images_root: Path | str, *,
                 local_features: str | None = DEFAULT_KIND, save_every_s: float = 30.0, progress: bool = True,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.started = time.perf_counter()
        self.library, self.manifest = library, Path(manifest)
        self.root = open_root(images_root)
        self.report = IngestReport()
        library.bind_model(model)
        self.feature_kind = library.local_features_kind(local_features)
        self.save_every_s, self.on_batch = save_every_s, on_batch
        self.bar = _progress(count_image_refs(self.manifest) if progress else 0, progress)
        self.committed = 0
        self._last_save = time.monotonic()
        self._save_cost = 0.0  # seconds the last save took: a large index is saved less often
        self._stack = ExitStack()

    def __enter__(self) -> "IngestRun":
        self._stack.enter_context(self.library.writing())
        self.library.refresh()  # load and catch up before the first batch
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.bar.close()
            self.library.save()
        finally:
            self._stack.close()
        self.report.seconds = time.perf_counter() - self.started
        self.report.report_path = _write_problems(self.library.paths, self.report.problems)

    def tasks(self) -> Iterator[PhotoTask]:
        """The manifest's new or changed photos, objects upserted on the way (call inside `with`)."""
        return _tasks(self.library, self.manifest, self.root, self.report, self.bar)

    def take(self, task: PhotoTask, result: Decoded) -> DecodedPhoto | None:
        """A decoded photo to embed and commit, or None (reported failure, or the same bytes as catalogued)."""
        if isinstance(result, DecodeFailure):
            self.report.images_failed += 1
            self.report.problems.append(Problem(task.object_id, task.ref, result.reason))
            self.bar.update(1)
            return None
        if task.known is not None and task.known.sha256 == result.sha256:
            self.library.catalogue.touch_image(task.known.image_id, task.mtime_ns)  # only the timestamp moved
            self.report.images_unchanged += 1
            self.bar.update(1)
            return None
        return result

    def commit(self, batch: Sequence[tuple[PhotoTask, DecodedPhoto]], xb: np.ndarray) -> None:
        """Commit embedded photos (vectors and features) in one transaction; the index follows."""
        if not batch:
            return
        photos = [
            PreparedPhoto(t.object_pk, t.object_id, t.ref, t.location, d.sha256, d.size_bytes, t.mtime_ns, d.array,
                          d.width, d.height, t.known.image_id if t.known else None,
                          d.features.to_row() if d.features is not None else None)
            for t, d in batch
        ]
        with self.library.catalogue.transaction():
            new_ids, old_ids, problems = write_photos(self.library.catalogue, photos, xb)
        # The catalogue is committed; the in-memory index follows (a kill here is reconciled on open).
        follow_photos(self.library, new_ids, old_ids, xb)
        report = self.report
        report.images_replaced += len(old_ids)
        report.images_added += len(photos) - len(old_ids)
        report.duplicates += len(problems)
        report.problems += problems
        self.committed += len(photos)
        self.bar.update(len(photos))
        if self.on_batch is not None:
            self.on_batch(self.committed)
        # Saving rewrites the index file, which grows with the catalogue: keep saves under ~5% of
        # the run, else a million-photo ingest would spend ever more of its time saving.
        if time.monotonic() - self._last_save > max(self.save_every_s, 20 * self._save_cost):
            started_save = time.monotonic()
            self.library.save()
            self._last_save = time.monotonic()
            self._save_cost = self._last_save - started_save

    def backfill(self, cfg: PreprocessConfig, max_pixels: int) -> None:
        """Local features for catalogued photos that have none (an index built before them)."""
        if self.feature_kind:
            backfill_features(self.library, cfg, self.feature_kind, max_pixels, self.report)


def backfill_features(library: Library, cfg: PreprocessConfig, kind: str, max_pixels: int,
                      report: IngestReport | None = None) -> int:
    """Extract local features for catalogued photos that have none (indexes built before them)."""
    done = 0
    missing = library.images_without_features().tolist()  # once: no query per batch that grows with the catalogue
    for start in range(0, len(missing), 64):
        chunk = missing[start : start + 64]
        paths = library.catalogue.images_by_id(chunk)
        todo = [(i, paths[i][1].path) for i in chunk if i in paths]
        with library.catalogue.transaction():
            for image_id, path in todo:
                try:
                    img, _ = load_photo(read_location(path), cfg, max_pixels=max_pixels)
                except (ImageError, OSError) as exc:
                    if report is not None:
                        report.problems.append(Problem("", path, f"no local features: {exc}", "warning"))
                    continue
                library.catalogue.set_features(image_id, extract_features(img, kind).to_row())
                done += 1
        library.adopt_features([i for i, _ in todo])
    return done


def _tasks(library: Library, manifest: Path, root: ImageRoot, report: IngestReport, bar: Any) -> Iterator[PhotoTask]:
    catalogue = library.catalogue
    seen_objects = bytearray()  # bitmap by object pk: an eighth of a byte per object, not a string
    for row in read_manifest(manifest):
        if row.record is None:
            report.problems.append(Problem("", f"{manifest.name}:{row.line}", row.problem or "bad row"))
            continue
        oid = row.record.object_id
        try:
            with catalogue.transaction():
                pk, change = catalogue.upsert_object(row.record)
                if change != "unchanged":
                    catalogue.log_change("ingest", change, oid, {"manifest": str(manifest), "line": row.line})
        except ArtefactError as exc:
            report.problems.append(Problem(oid, f"{manifest.name}:{row.line}", str(exc)))
            bar.update(max(1, len(row.images)))
            continue
        if pk >= 8 * len(seen_objects):
            seen_objects.extend(bytes(max(pk // 8 + 1 - len(seen_objects), len(seen_objects))))
        if not seen_objects[pk >> 3] >> (pk & 7) & 1:  # a later row with the same id adds photos, not a second object
            seen_objects[pk >> 3] |= 1 << (pk & 7)
            setattr(report, f"objects_{change}", getattr(report, f"objects_{change}") + 1)
        if not row.images:
            report.problems.append(Problem(oid, "", "object has no photos listed", "warning"))
            continue
        known = catalogue.known_images(pk)
        for ref, location, problem in root.resolve(row.images):
            if location is None:
                report.images_failed += 1
                report.problems.append(Problem(oid, ref, problem or "unusable path"))
                bar.update(1)
                continue
            try:
                size, mtime_ns = root.stat(location)
            except OSError as exc:
                report.images_failed += 1
                report.problems.append(Problem(oid, ref, f"cannot read file ({exc.strerror or exc})"))
                continue
            k = known.get(location)
            if k is not None and k.size_bytes == size and k.mtime_ns == mtime_ns:
                report.images_unchanged += 1  # same size and time as when indexed: not re-read
                bar.update(1)
                continue
            yield PhotoTask(oid, pk, ref, location, k, mtime_ns)


def _write_problems(home: Home, problems: list[Problem]) -> str | None:
    if not problems:
        return None
    folder = home.reports
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"ingest-{stamp}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["kind", "object_id", "file", "problem"])
        for p in problems:
            w.writerow([spreadsheet_safe(cell) for cell in (p.kind, p.object_id, p.file, p.problem)])
    return str(path)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that could start a formula gets a leading `'`.

    For reports people open (ids and paths come from manifests, i.e. from outside); not for
    files the program reads back, whose values must stay as they are.
    """
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total or None, unit="img", desc="indexing", smoothing=0.1, dynamic_ncols=True)
