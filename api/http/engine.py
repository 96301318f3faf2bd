"""The engine behind the HTTP API: one library and model, thread-safe, with batched inference.

Routes call its methods and never take its lock or touch the catalogue themselves.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from artefact.api.http.errors import ImageNotFoundError, ObjectExistsError
from artefact.api.http.files import QUERY_PHOTO_SIDE, THUMBNAIL_SIDE, ServiceFiles
from artefact.api.settings import Settings
from artefact.index.stores.choice import settle as settle_store
from artefact.embed.embedder import Embedder
from artefact.embed.errors import ArtefactError
from artefact.embed.fileio import atomic_path, atomic_write_bytes
from artefact.embed.images import available_memory_bytes, decode_slots, load_image
from artefact.embed.loader import embedder_for
from artefact.embed.preprocess import MIN_DECODE_SIDE, PreprocessConfig, load_photo
from artefact.index.bundle.freshness import freshness
from artefact.index.catalogue import BUNDLE_META, SearchFilters
from artefact.index.errors import IndexMismatchError, ObjectNotFoundError
from artefact.index.ingest import PreparedPhoto, follow_photos, write_photos
from artefact.index.library import Library
from artefact.index.records import ImageRecord, ObjectRecord
from artefact.index.search import Evidence, SearchResult, default_threshold, embed_queries, rank
from artefact.index.verification import DEFAULT_KIND, Features, draw_evidence
from artefact.index.verification import extract as extract_features

log = logging.getLogger(__name__)


class BatchingEmbedder:
    """Coalesces concurrent requests into one forward pass; one thread owns the model.

    Decoding stays in the request threads (parallel); only the model is serialised,
    and a burst of searches shares batches instead of queueing one by one.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 16, wait_ms: float = 3.0) -> None:
        self.embedder = embedder
        self.preprocess: PreprocessConfig = embedder.preprocess
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000.0
        self._queue: queue.Queue[tuple[list[np.ndarray], Future[np.ndarray]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
        self._thread.start()

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        fut: Future[np.ndarray] = Future()
        self._queue.put((list(arrays), fut))
        return fut.result()

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed_text(texts)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            jobs = [item]
            size = len(item[0])
            deadline = time.monotonic() + self.wait_s
            while size < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                size += len(nxt[0])
            try:
                xb = self.embedder.embed_prepared([a for arrays, _ in jobs for a in arrays])
            except Exception as exc:  # handed to every waiting request, not lost in this thread
                for _, fut in jobs:
                    fut.set_exception(exc)
                continue
            start = 0
            for arrays, fut in jobs:
                fut.set_result(xb[start : start + len(arrays)])
                start += len(arrays)


@dataclass
class PhotoInput:
    data: bytes
    sha256: str
    array: np.ndarray
    width: int
    height: int
    image: Image.Image
    features: Features | None
    number: int = 1  # its place among the request's photos, from 1 (for messages)


def _unique(photos: Sequence[PhotoInput]) -> tuple[list[PhotoInput], list[str]]:
    """The photos without repeats (the same bytes sent twice), and a warning for each repeat."""
    first: dict[str, PhotoInput] = {}
    warnings = []
    for p in photos:
        if p.sha256 in first:
            warnings.append(f"photo {p.number}: same photo as photo {first[p.sha256].number} of this request; stored once")
        else:
            first[p.sha256] = p
    return list(first.values()), warnings


@dataclass
class ObjectView:
    """An object's record with its catalogue photos, as one consistent read."""

    record: ObjectRecord
    images: list[ImageRecord]


class Engine:
    """Library + model for the service. All catalogue/index access holds `lock`;
    decoding and inference do not, so they run in parallel with searches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settle_store(settings.paths, settings.vector_store)  # a home keeps the vector store it was built with
        self.library = Library(settings.home, store_options=settings.store_options())
        self.lock = threading.RLock()
        embedder = embedder_for(self.library.model, settings.explicit_spec(self.library.model),
                                settings.load_options())
        self.library.check_model(embedder.description)
        self.embedder = embedder
        self.batcher = BatchingEmbedder(embedder)
        # The first forward pass pays one-off kernel set-up; pay it now, not on an officer's query.
        size = embedder.preprocess.size
        self.batcher.embed_prepared([np.zeros((size, size, 3), dtype=np.uint8)])
        with self.lock:
            # A vector index that differs from the catalogue is rebuilt in the background: /readyz
            # says "rebuilding" and searches answer 503 until it is done, never from wrong vectors.
            if self.library.open_vectors(repair=False) is not None:
                threading.Thread(target=self._rebuild, name="index-rebuild", daemon=True).start()
            self.library.local_features_kind(DEFAULT_KIND)  # new indexes store local features
        # One decode per core, and no more than memory holds at the pixel cap (each may take ~8 bytes a pixel).
        slots = settings.decode_slots or decode_slots(os.cpu_count() or 2, available_memory_bytes(), settings.max_pixels)
        self.decode_slots = threading.BoundedSemaphore(slots)
        self.files = ServiceFiles(settings.paths)

    def close(self) -> None:
        self.batcher.close()
        self.library.close()

    @property
    def rebuilding(self) -> str | None:
        """Why the vector index is being rebuilt from the catalogue (None: it is not)."""
        return self.library.rebuilding

    def _rebuild(self) -> None:
        """Runs in its own thread: the store is rebuilt off the lock (object reads go on), then swapped in."""
        try:
            store, generation = self.library.rebuild_vectors()
            with self.lock:
                self.library.adopt_vectors(store, generation)
        except Exception as exc:  # the service stays up and says why it cannot search
            log.exception("rebuilding the vector index failed")
            self.library.rebuilding = (f"the rebuild failed ({exc}); restart the service or run "
                                       "`artefact index check --repair`")

    @property
    def threshold(self) -> float:
        if self.settings.match_threshold is not None:
            return self.settings.match_threshold
        return default_threshold(self.embedder.description)

    # -- inputs -------------------------------------------------------------------
    def prepare(self, data: bytes, local_features: bool = True) -> PhotoInput:
        """Validate and decode one uploaded photo (raises typed image errors).

        `local_features=False` skips the keypoints, for a search that will not re-rank.
        """
        # A burst of uploads waits here with only its compressed bytes in memory.
        with self.decode_slots:
            img, arr = load_photo(
                data, self.embedder.preprocess, max_pixels=self.settings.max_pixels,
                max_bytes=self.settings.max_photo_bytes,
            )
            # Local features are extracted here, in the request thread, not under the index lock.
            kind = self.library.local_features if local_features else None
            feats = extract_features(img, kind) if kind else None
        w, h = img.info.get("original_size", img.size)
        return PhotoInput(data, hashlib.sha256(data).hexdigest(), arr, int(w), int(h), img, feats)

    def preview(self, data: bytes, max_side: int) -> bytes:
        """An upright JPEG of an uploaded photo, long side at most `max_side`, for a browser that cannot
        show its format (HEIC, TIFF, AVIF ...); decoded on the search path, with its limits and slots."""
        with self.decode_slots:
            img = load_image(data, max_pixels=self.settings.max_pixels, max_bytes=self.settings.max_photo_bytes,
                             min_side=max_side)
            img.thumbnail((max_side, max_side))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=85)
        return out.getvalue()

    # -- search -------------------------------------------------------------------
    def search(
        self,
        photos: Sequence[PhotoInput],
        texts: Sequence[str],
        k: int,
        filters: SearchFilters,
        threshold: float | None,
        decode_ms: float = 0.0,
        rerank: int | None = None,
    ) -> SearchResult:
        """Rank the `k` (at most `max_k`) closest objects; `threshold` (or the configured one)
        overrides calibrated verdicts; `rerank` (unset: the configured default) candidates get
        geometric verification."""
        t0 = time.perf_counter()
        xq, kinds = embed_queries(self.batcher, [p.array for p in photos], texts)
        t1 = time.perf_counter()
        if threshold is None:
            threshold = self.settings.match_threshold
        feats = [p.features for p in photos if p.features is not None]
        with self.lock:
            self.library.refresh()  # a concurrent ingest's committed photos become visible here
            return rank(self.library, xq, kinds, feats, k=min(k, self.settings.max_k), filters=filters,
                        threshold=threshold, rerank=self.settings.rerank if rerank is None else rerank,
                        timings={"decode": decode_ms, "embed": (t1 - t0) * 1e3})

    # -- catalogue edits ---------------------------------------------------------------
    def create_object(self, record: ObjectRecord, photos: Sequence[PhotoInput], actor: str) -> list[str]:
        """Create a record with its photos: all of it or nothing. Returns warnings (photos skipped or noted).

        The photos are embedded first, without the lock; then the record, its photos and their
        vectors are written in one transaction, so no kill leaves a record without its photos.
        """
        photos, warnings = _unique(photos)
        xb = self._embed(photos)
        with self.lock, self.library.writing():
            self.library.refresh()
            catalogue = self.library.catalogue
            try:
                catalogue.get_object(record.object_id)
            except ObjectNotFoundError:
                pass
            else:
                raise ObjectExistsError(f"an object with id {record.object_id!r} exists already; update it instead")
            with self._photo_files(record.object_id, photos) as paths, catalogue.transaction():
                pk, _ = catalogue.upsert_object(record)
                ids, old, problems = write_photos(catalogue, self._prepared(pk, record.object_id, photos, paths), xb)
                catalogue.log_change(actor, "create", record.object_id, {"photos": len(ids)})
            follow_photos(self.library, ids, old, xb)
            self.library.save()
        return warnings + [p.problem for p in problems]

    def add_photos(self, object_id: str, photos: Sequence[PhotoInput], actor: str) -> list[str]:
        """Attach photos to an object; one already attached is skipped. Returns warnings."""
        photos, warnings = _unique(photos)
        xb = self._embed(photos)
        with self.lock, self.library.writing():
            self.library.refresh()
            catalogue = self.library.catalogue
            pk = catalogue.object_pk(object_id)  # 404 before any file is written
            attached = {k.sha256: k.image_id for k in catalogue.known_images(pk).values()}
            keep = [n for n, p in enumerate(photos) if p.sha256 not in attached]
            warnings += [f"photo {p.number}: already attached to {object_id} as image {attached[p.sha256]}; skipped"
                         for p in photos if p.sha256 in attached]
            photos, xb = [photos[n] for n in keep], xb[keep]
            if not photos:
                return warnings
            with self._photo_files(object_id, photos) as paths, catalogue.transaction():
                ids, old, problems = write_photos(catalogue, self._prepared(pk, object_id, photos, paths), xb)
                catalogue.log_change(actor, "add-photos", object_id, {"image_ids": ids})
            follow_photos(self.library, ids, old, xb)
            self.library.save()
        return warnings + [p.problem for p in problems]

    def _embed(self, photos: Sequence[PhotoInput]) -> np.ndarray:
        if not photos:
            return np.zeros((0, self.embedder.description.dim), dtype=np.float32)
        return self.batcher.embed_prepared([p.array for p in photos])

    @contextmanager
    def _photo_files(self, object_id: str, photos: Sequence[PhotoInput]) -> Iterator[list[Path]]:
        """Write uploaded photos to their files before the transaction that refers to them;
        if that transaction fails, the files it would have added are removed again."""
        folder = self.files.upload_folder(object_id)
        paths = [folder / p.sha256 for p in photos]
        new = [path for path in paths if not path.exists()]
        try:
            for p, path in zip(photos, paths):
                if path in new:  # named by its content: written once, whole or not at all
                    atomic_write_bytes(path, p.data)
            yield paths
        except BaseException:
            self.files.remove(new)
            raise

    @staticmethod
    def _prepared(pk: int, object_id: str, photos: Sequence[PhotoInput], paths: Sequence[Path]) -> list[PreparedPhoto]:
        return [PreparedPhoto(pk, object_id, path.name, path, p.sha256, len(p.data), path.stat().st_mtime_ns,
                              p.array, p.width, p.height, None, p.features.to_row() if p.features else None)
                for p, path in zip(photos, paths)]

    def update_object(self, object_id: str, changes: dict[str, str], actor: str) -> ObjectRecord:
        with self.lock, self.library.writing():
            catalogue = self.library.catalogue
            current = catalogue.get_object(object_id)
            fields = {**current.fields, **changes}
            with catalogue.transaction():
                catalogue.upsert_object(ObjectRecord(object_id, fields, current.extra))
                before = {k: current.fields.get(k, "") for k in changes}
                catalogue.log_change(actor, "update", object_id, {"from": before, "to": changes})
            return catalogue.get_object(object_id)

    def set_status(self, object_id: str, status: str, actor: str) -> str:
        with self.lock, self.library.writing():
            return self.library.set_status(object_id, status, actor)

    def delete_object(self, object_id: str, actor: str, evidence: Sequence[tuple[str, int]] = ()) -> int:
        """Delete an object with its photos and vectors; once committed, its uploaded photos, thumbnails and
        the evidence images named by `evidence` (search id, rank) are removed. Returns the vectors removed."""
        with self.lock, self.library.writing():
            images = self.library.catalogue.object_images(object_id)
            removed = self.library.remove_object(object_id, actor)
            # Still under the writer lock: a create of the same id cannot reuse a file about to go.
            self.files.remove(self.files.of_object(images, evidence))
        return removed

    # -- reads ------------------------------------------------------------------------
    def image_file(self, image_id: int) -> Path:
        with self.lock:
            info = self.library.catalogue.images_by_id([image_id])
        if image_id not in info:
            raise ImageNotFoundError(f"no catalogue photo with id {image_id}")
        path = Path(info[image_id][1].path)
        if not path.is_file():
            raise ImageNotFoundError(f"catalogue photo {image_id} is missing on disk ({path.name})")
        return path

    def photo(self, image_id: int) -> tuple[Path, str]:
        """A catalogue photo's file and its media type, read from the file's content (uploads have no extension)."""
        path = self.image_file(image_id)
        try:
            with Image.open(path) as img:  # reads the header only
                media_type = Image.MIME.get(img.format or "", "application/octet-stream")
        except (OSError, ValueError, Image.DecompressionBombError):
            media_type = "application/octet-stream"
        return path, media_type

    def thumbnail(self, image_id: int, side: int = THUMBNAIL_SIDE) -> Path:
        """A JPEG thumbnail (long side `side`), generated once and cached under HOME/thumbnails."""
        source = self.image_file(image_id)
        target = self.files.thumbnail(image_id, side)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            img: Image.Image = load_image(source, max_pixels=self.settings.max_pixels, min_side=side)
            img.thumbnail((side, side))
            with atomic_path(target) as tmp:
                img.save(tmp, "JPEG", quality=85)
        return target

    def save_evidence(self, search_id: str, rank: int, query_image: Image.Image, evidence: Evidence) -> bool:
        """Draw the verified correspondences of one match; False when the catalogue photo is gone."""
        try:
            cand = load_image(self.image_file(evidence.image.image_id), max_pixels=self.settings.max_pixels,
                              min_side=MIN_DECODE_SIDE)
        except (ArtefactError, OSError) as exc:
            log.warning("no evidence image for search %s rank %d: %s", search_id, rank, exc)
            return False
        with atomic_path(self.evidence_path(search_id, rank)) as tmp:
            draw_evidence(query_image, cand, evidence.verification).save(tmp, "JPEG", quality=85)
        return True

    def save_query_photos(self, search_id: str, images: Sequence[Image.Image]) -> None:
        """Keep the search's query photos, reduced, for its sheet (the evidence images show them too)."""
        for n, image in enumerate(images):
            small = image.convert("RGB")
            small.thumbnail((QUERY_PHOTO_SIDE, QUERY_PHOTO_SIDE))
            with atomic_path(self.files.query_photo(search_id, n)) as tmp:
                small.save(tmp, "JPEG", quality=85)

    def query_photo_paths(self, search_id: str) -> list[Path]:
        """The kept query photos of a search, in the order they were sent."""
        if not search_id.isalnum():
            return []
        paths: list[Path] = []
        while (path := self.files.query_photo(search_id, len(paths))).is_file():
            paths.append(path)
        return paths

    def evidence_path(self, search_id: str, rank: int) -> Path:
        if not search_id.isalnum():
            raise ImageNotFoundError("no such evidence image")
        return self.files.evidence(search_id, rank)

    def object_view(self, object_id: str) -> ObjectView:
        """An object and its photos (raises ObjectNotFoundError)."""
        with self.lock:
            return ObjectView(self.library.catalogue.get_object(object_id), self.library.catalogue.object_images(object_id))

    def list_objects(self, filters: SearchFilters, limit: int, offset: int) -> list[ObjectView]:
        """One page of objects (ordered by id) that pass the filters, each with its photos."""
        with self.lock:
            catalogue = self.library.catalogue
            return [ObjectView(r, catalogue.object_images(r.object_id))
                    for r in catalogue.list_objects(filters, limit=limit, offset=offset)]

    def find_objects(self, words: str, filters: SearchFilters, limit: int, offset: int = 0) -> list[ObjectView]:
        """Objects whose record holds every word (keyword index, no model involved), best first."""
        with self.lock:
            catalogue = self.library.catalogue
            return [ObjectView(r, catalogue.object_images(r.object_id))
                    for r in catalogue.find_objects(words, filters, limit=limit, offset=offset)]

    def images_of(self, object_ids: Sequence[str]) -> dict[str, list[ImageRecord]]:
        """The photos of each object named, read together (for a search's matches)."""
        with self.lock:
            return {oid: self.library.catalogue.object_images(oid) for oid in object_ids}

    def history(self, object_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Catalogue changes, newest first: who changed what, when."""
        with self.lock:
            return self.library.catalogue.history(object_id, limit)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return self.library.stats()

    def public_stats(self) -> dict[str, Any]:
        """Counts, model and threshold for clients: no server paths."""
        s = self.stats()
        s.pop("home", None)
        s.pop("index_file", None)
        return {**s, "threshold": self.threshold, "freshness": self.catalogue_freshness()}

    def catalogue_freshness(self) -> dict[str, Any] | None:
        """The bundle the served catalogue came from, its date, and a warning once too old (None: not imported)."""
        with self.lock:
            raw = self.library.catalogue.get_meta(BUNDLE_META)
        fresh = freshness(json.loads(raw) if raw else None, self.settings.catalogue_max_age_days)
        return fresh.to_dict() if fresh else None

    def reload(self) -> dict[str, Any]:
        """Serve a newly imported catalogue bundle now (searches also move to it on their own).

        Raises:
            IndexMismatchError: the new catalogue needs another model; restart the service.
        """
        with self.lock:
            moved = self.library.refresh()
            blocked = self.library.switch_blocked
        if blocked:
            raise IndexMismatchError(blocked)
        return {"reloaded": moved, "freshness": self.catalogue_freshness()}
