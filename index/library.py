"""A Library is one installation's data: the SQLite catalogue, the FAISS index beside it, and their model."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from artefact.index.errors import CatalogueError, IndexMismatchError, IndexRebuildingError, ReadOnlyHomeError
from artefact.embed.fileio import private_dir
from artefact.embed.models import ModelDescription
from artefact.embed.runtimes.variants import agreement_problem
from artefact.index.catalogue import BUNDLE_META, Catalogue, ids_digest
from artefact.index.features_store import FeatureStore
from artefact.index.verification import Features
from artefact.index.home import Home
from artefact.index.stores import FlatStore, IdSelection, StoreError, VectorStore, open_store
from artefact.index.stores import files as store_files
from artefact.index.records import FILTER_FIELDS
from artefact.index.stores.attributes import RecordAttributes, change_seq, changed_images
from artefact.index.stores.choice import StoreChoice, remembered
from artefact.index.stores.milvus import MILVUS, FieldSource, MilvusStore, from_manifest
from artefact.index.stores.optimize import StoreOptions
from artefact.index.vectors import manifest_path

if TYPE_CHECKING:
    from artefact.index.calibration import Calibration
    from artefact.index.catalogue import SearchFilters

log = logging.getLogger(__name__)


class Library:
    """Catalogue + vector index of one home folder, kept consistent with each other.

    SQLite holds every vector, so the FAISS file is a cache: when a run was killed
    between a catalogue commit and an index save, opening reconciles the two by id.
    """

    def __init__(self, home: Path | Home, store_options: StoreOptions | None = None) -> None:
        self.paths = home if isinstance(home, Home) else Home(home)
        self.home = private_dir(self.paths.root)
        # An imported bundle makes `catalogue.sqlite` a link to a version folder; the vectors lie
        # beside the catalogue they belong to, so the two always switch together.
        self.catalogue = Catalogue(self.paths.current_catalogue())
        self.index_path = self.catalogue.path.parent / self.paths.vectors.name
        self.store_options = store_options or StoreOptions()  # flat up to a size, compressed beyond
        # FAISS files beside the catalogue, or a Milvus collection: the home records which (stores/choice.py).
        self.store_choice: StoreChoice = remembered(self.paths) or StoreChoice()
        self._vectors: VectorStore | None = None
        self._generation = -1  # catalogue generation the in-memory index reflects
        self._store_stamp: tuple[int, int] | None = None  # the store manifest (mtime, size) loaded or saved
        self._attributes: RecordAttributes | None = None  # filter fields by photo id, for exact filters
        self._features: FeatureStore | None = None  # local features, compact, outside SQLite rows
        self.switch_blocked: str | None = None  # why a newly imported catalogue is not followed
        self.rebuilding: str | None = None  # why the store on disk was set aside until rebuilt (service)
        self._unmatched: VectorStore | None = None  # that store, for `rebuild_vectors` to start from
        self._writer = False  # this Library holds the writer lock
        self.model_in_use: ModelDescription | None = None  # set by check_model

    def close(self) -> None:
        if isinstance(self._vectors, MilvusStore):
            self._vectors.close()
        self.catalogue.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model binding --------------------------------------------------------
    @property
    def model(self) -> ModelDescription | None:
        d = self.catalogue.model()
        return ModelDescription.from_dict(d) if d else None

    def check_model(self, description: ModelDescription) -> None:
        """Refuse a model other than the one that built this index.

        Raises:
            IndexMismatchError: the vectors would not be comparable.
        """
        existing = self.model
        if existing is not None and existing.identity() != description.identity():
            raise IndexMismatchError(
                f"the index in {self.home} was built with {existing.label()} "
                f"(dim {existing.dim}, weights {existing.weights_sha256[:12]}), but the model "
                f"loaded is {description.label()} (dim {description.dim}, weights "
                f"{description.weights_sha256[:12]}). Vectors of different models cannot be "
                "compared: use the index's own model (leave --model/--pretrained unset), or "
                "build a new index in another --home."
            )
        problem = agreement_problem(existing, description) if existing is not None else None
        if problem is not None:  # same weights, another runtime/precision whose vectors drift
            raise IndexMismatchError(f"{self.home}: {problem}")
        self.model_in_use = description  # what a long-lived caller (the service) embeds queries with

    def bind_model(self, description: ModelDescription) -> None:
        self.check_model(description)
        if self.model is None:
            with self.catalogue.transaction():
                self.catalogue.set_model(description.to_dict())
            if self._vectors is not None and self._vectors.dim != description.dim:
                self._vectors = self._new_store(description.to_dict())

    @property
    def local_features(self) -> str | None:
        """Kind of local features stored with this index's photos (None: none)."""
        return self.catalogue.get_meta("local_features") or None

    def local_features_kind(self, wanted: str | None) -> str | None:
        """The local-feature kind of this index; the first ingest decides it."""
        stored = self.catalogue.get_meta("local_features")
        if stored is not None:
            return stored or None
        with self.catalogue.transaction():
            self.catalogue.set_meta("local_features", wanted or "")
        return wanted

    def calibration(self, uses_inliers: bool) -> "Calibration | None":
        """This index's fitted calibration, or the built-in one for its model family, or None."""
        from artefact.index.calibration import Calibration, builtin_calibration

        raw = self.catalogue.get_meta("calibration_rerank" if uses_inliers else "calibration_score")
        if raw:
            return Calibration.from_json(raw)
        return builtin_calibration(self.model, uses_inliers)

    def set_calibration(self, calibration: "Calibration") -> None:
        with self.catalogue.transaction():
            key = "calibration_rerank" if calibration.uses_inliers else "calibration_score"
            self.catalogue.set_meta(key, calibration.to_json())

    # -- writer lock ------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Exclusive writer lock across processes (two ingests must not interleave).

        A search server's home reads its vectors from a collection the writer host fills: every
        write is refused here, before any catalogue row changes (a bundle import is how it moves on).
        """
        if self.store_choice.read_only:
            raise ReadOnlyHomeError(
                f"{self.home} is a search server: it reads its vectors read-only ({self.store_choice.spec}); "
                "add, change and remove objects on the writer host, then import its bundle here")
        fd = os.open(str(self.paths.write_lock), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise CatalogueError(
                    f"another process is writing to {self.home}; wait for it to finish"
                ) from exc
            self._writer = True
            self._follow_switch()  # write into the catalogue in use, not one an import replaced
            yield
        finally:
            self._writer = False
            os.close(fd)  # closing releases the lock

    # -- vectors ----------------------------------------------------------------
    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            if self.rebuilding is not None:  # never answer from a store known to differ
                raise IndexRebuildingError(f"the vector index is rebuilding from the catalogue ({self.rebuilding})")
            self._vectors = self._load_vectors()
        return self._vectors

    def _load_vectors(self) -> VectorStore:
        self.open_vectors()
        assert self._vectors is not None
        return self._vectors

    def open_vectors(self, repair: bool = True) -> str | None:
        """Load the vector store and compare its ids and count with the catalogue's.

        The store is a cache of the catalogue's vectors, so one that is unreadable, missing, of
        another dimension, or whose ids differ although its manifest claims the catalogue's
        generation (an older file beside a newer manifest) is rebuilt from the catalogue, logged.
        A store that is merely behind (a killed ingest) is caught up by id as always.

        Args:
            repair: rebuild at once, in this thread (the CLI); False sets the store aside and
                leaves the rebuild to `rebuild_vectors` (the service, in the background), with
                `rebuilding` saying why; until then `vectors` raises IndexRebuildingError.

        Returns:
            Why the store differed from the catalogue, or None.
        """
        disk = self._read_vectors()
        self._store_stamp = disk.stamp
        if disk.problem is not None and not repair:
            log.warning("vector index %s: %s; it will be rebuilt from the catalogue", self.index_path, disk.problem)
            self._vectors, self._unmatched, self.rebuilding = None, disk.store, disk.problem
            return disk.problem
        if disk.problem is not None:
            log.warning("vector index %s: %s; rebuilding it from the catalogue", self.index_path, disk.problem)
        # A store that differs is reconciled by id below, whatever generation its manifest claims.
        self._vectors, self._generation = disk.store, -1 if disk.problem else disk.generation
        if self.model is not None and self._generation != self.catalogue.generation:
            if disk.problem is None:
                log.info("vector index is behind the catalogue; reconciling")
            self.refresh()
            self._save_if_writable()
        return disk.problem

    def _read_vectors(self) -> "_OnDisk":
        """The store as on disk (a new empty one when there is none to use) and why it cannot be
        used as it is. Reads only, and changes nothing in this Library."""
        raw_model = self.catalogue.model()
        dim = int(raw_model["dim"]) if raw_model else 0
        stamp = _stamp(manifest_path(self.index_path))
        if self.store_choice.is_milvus and raw_model is not None:
            return self._read_milvus(raw_model, stamp)
        problem: str | None = None
        manifest: dict[str, Any] | None = None
        if stamp is not None:
            try:
                store, manifest = open_store(self.index_path)
            except CatalogueError as exc:
                problem = f"unreadable ({exc})"
        elif raw_model is not None and len(self.catalogue.image_ids()):
            problem = "missing"
        if manifest is not None and raw_model is not None and manifest.get("dim") != dim:
            problem, manifest = f"holds {manifest.get('dim')}-d vectors, the catalogue's model makes {dim}-d ones", None
        if manifest is None:
            return _OnDisk(self._new_store(raw_model), problem, -1, stamp, None)
        generation = int(manifest.get("generation", -1))
        if raw_model is not None and generation == self.catalogue.generation:
            problem = _differs(store, manifest, self.catalogue)
        return _OnDisk(store, problem, generation, stamp, manifest)

    def _read_milvus(self, raw_model: dict[str, Any], stamp: tuple[int, int] | None) -> "_OnDisk":
        """The model's Milvus collection as it is now, and whether it holds what its manifest says.

        The manifest beside the catalogue only records which generation (and which change of
        the filter fields) the collection reflects; one of another kind says nothing about it.
        """
        try:
            manifest = store_files.read_manifest(self.index_path)
        except (OSError, ValueError):
            manifest = None
        store = self._new_store(raw_model)  # an unreachable Milvus raises: rebuilding could not help
        assert isinstance(store, MilvusStore)
        generation, ours = from_manifest(manifest, store)
        if store.read_only:  # a search server: the writer host keeps the collection in line, never this one
            return _OnDisk(store, None, self.catalogue.generation, stamp, manifest if ours else None)
        problem = None
        if ours and manifest is not None and generation == self.catalogue.generation:
            problem = _differs(store, manifest, self.catalogue)
        return _OnDisk(store, problem, generation, stamp, manifest if ours else None)

    def _new_store(self, raw_model: dict[str, Any] | None, fresh: bool = False) -> VectorStore:
        """The one place a store is made: an empty FAISS flat store, or the model's Milvus collection
        (created when missing; with `fresh`, dropped and created empty)."""
        dim = int(raw_model["dim"]) if raw_model else 0
        if not self.store_choice.is_milvus or raw_model is None:
            return FlatStore(dim)
        store = MilvusStore.open(self.store_choice, raw_model, self._record_fields, fresh=fresh)
        if store.ntotal == 0:  # every row it will get carries the fields current when written
            store.fields_seq = change_seq(self.catalogue.db)
        return store

    def rebuild_vectors(self) -> tuple[VectorStore, int]:
        """Rebuild the store `open_vectors(repair=False)` set aside, through a catalogue connection
        of its own, so the caller's other threads keep reading the catalogue meanwhile: the store
        read from disk brought in line by id when it was readable, else a new flat store.

        Returns:
            The store and the catalogue generation it reflects, for `adopt_vectors`.
        """
        source = Catalogue(self.catalogue.path)
        try:
            raw_model = source.model()
            store = self._unmatched or self._new_store(raw_model)
            if isinstance(store, MilvusStore):  # fields read through the rebuild's own connection
                store.fields = _fields_from(RecordAttributes.build(source.db))
            with source.snapshot():
                generation = source.generation
                self._reconcile(store, source)
            if isinstance(store, MilvusStore):
                store.fields = self._record_fields
        finally:
            source.close()
        return store, generation

    def adopt_vectors(self, store: VectorStore, generation: int) -> None:
        """Use a rebuilt store (the caller serialises access), catch up with later changes and save it."""
        self._vectors, self._generation, self._unmatched, self.rebuilding = store, generation, None, None
        self.refresh()
        self._save_if_writable()
        log.info("vector index rebuilt from the catalogue: %d vectors", store.ntotal)

    def _save_if_writable(self) -> None:
        """Save a store reconciled on open, unless another process holds the writer lock (its own
        save will follow); an open never waits for a writer."""
        if self._writer:
            self.save()
            return
        try:
            with self.writing():
                self.save()
        except CatalogueError as exc:
            log.info("vector index not saved: %s", exc)

    def refresh(self) -> bool:
        """Catch up with catalogue changes made elsewhere (another process's ingest).

        Returns:
            True if the in-memory index changed.
        """
        if self._follow_switch() or self._follow_store():
            return True
        vectors = self.vectors
        if self.catalogue.generation == self._generation:
            return False
        if isinstance(vectors, MilvusStore):  # another process may have written the collection meanwhile
            vectors.reload_ids()
            if vectors.read_only:  # hits the catalogue copy lacks are dropped by search; nothing to write
                self._generation = self.catalogue.generation
                return True
        # One read snapshot: the generation recorded is exactly the state reconciled to.
        with self.catalogue.snapshot():
            generation = self.catalogue.generation
            self._reconcile(vectors)
        self._generation = generation
        return True

    def _follow_switch(self) -> bool:
        """Move to the catalogue an import switched in, with its vectors, in one step.

        Until this runs the old catalogue's files stay as they were (an import never writes
        them), so answers come wholly from the old data or wholly from the new.
        """
        target = self.paths.current_catalogue()
        if target == self.catalogue.path or not target.is_file():
            return False
        new = Catalogue(target)
        in_use, new_model = self.model_in_use or self.model, new.model()
        if in_use is not None and (new_model is None or ModelDescription.from_dict(new_model).identity() != in_use.identity()):
            new.close()
            if self.switch_blocked is None:
                self.switch_blocked = (
                    f"the catalogue imported into {self.home} uses another model than the one loaded; "
                    "restart to use it (answers still come from the previous catalogue)"
                )
                log.warning(self.switch_blocked)
            return False
        saved = (self.catalogue, self.index_path, self._vectors, self._generation, self._attributes)
        self.catalogue, self.index_path, self._vectors = new, target.parent / self.paths.vectors.name, None
        self._attributes = None  # filter fields of the old catalogue: rebuilt from the new one on demand
        try:
            self._vectors = self._load_vectors()
        except BaseException:
            new.close()
            self.catalogue, self.index_path, self._vectors, self._generation, self._attributes = saved
            raise
        saved[0].close()
        self.switch_blocked = None
        log.info("moved to the catalogue in %s", target.parent)
        return True

    def mark_synced(self) -> None:
        """After this process changed catalogue and index together (holding the writer lock)."""
        self._generation = self.catalogue.generation

    def _follow_store(self) -> bool:
        """Take up a store that another process's `optimize` swapped in (this one answered until now)."""
        stamp = _stamp(manifest_path(self.index_path))
        if self._vectors is None or stamp is None or stamp == self._store_stamp:
            return False
        manifest = store_files.read_manifest(self.index_path) or {}
        self._store_stamp = stamp
        if _build_of(manifest) == _build_of(self._vectors.describe()):
            return False  # only a save of the same store: reconciling by generation catches up
        vectors, manifest = open_store(self.index_path)
        self._vectors, self._generation = vectors, int(manifest.get("generation", -1))
        log.info("switched to the %s vector store that optimize built", vectors.kind)
        self.refresh()
        return True

    def _reconcile(self, vectors: VectorStore, catalogue: Catalogue | None = None) -> dict[str, int]:
        """Make the FAISS ids equal the catalogue's image ids, from the stored vectors."""
        catalogue = catalogue or self.catalogue
        have = vectors.ids()
        want = catalogue.image_ids()
        extra = np.setdiff1d(have, want, assume_unique=True)
        missing = np.setdiff1d(want, have, assume_unique=True)
        vectors.remove(extra)
        if len(missing):
            # A fresh index streams every stored vector; a stale one fetches only what it lacks.
            source = catalogue.vectors(None if len(missing) == len(want) else missing.tolist())
            for ids, mat in source:
                keep = np.isin(ids, missing)
                vectors.add(ids[keep], mat[keep])
        if len(extra) or len(missing):
            log.info("reconciled vector index with catalogue: %d vectors added, %d removed", len(missing), len(extra))
        return {"added": int(len(missing)), "removed": int(len(extra))}

    def save(self) -> None:
        """Persist the FAISS index with a manifest naming model, counts and catalogue generation."""
        if self._vectors is None:
            return
        self._sync_store_fields()  # the manifest then records fields as current as the catalogue
        self._save_store(self._vectors, self._generation)

    def _save_store(self, store: VectorStore, generation: int) -> None:
        model = self.model
        store.save(
            self.index_path,
            {
                "generation": generation,
                "model": model.to_dict() if model else None,
                "objects": self.catalogue.counts()["objects"],
                "pinned": self.pinned_index_type,
            },
        )
        self._store_stamp = _stamp(manifest_path(self.index_path))
        if self._attributes is not None and self._attributes.dirty:
            self._attributes.save(self.attributes_path)

    # -- filters and the store's kind ---------------------------------------------------
    @property
    def attributes_path(self) -> Path:
        return self.catalogue.path.parent / self.paths.record_filters.name

    def selection(self, filters: "SearchFilters") -> IdSelection | None:
        """The photos a search with these filters may return (None: all), without a scan per search.

        A Milvus store's filter fields are brought up to date first (filters are pushed down to it).
        """
        attributes = self._follow_attributes()
        self._sync_store_fields()
        selection = attributes.selection(filters)
        if selection is None and isinstance(self._vectors, MilvusStore) and self._vectors.read_only:
            # A search server's copy may not know yet what the writer excluded since (a photo marked
            # recovered): the filter still goes down to the shared collection, whose fields are newer.
            selection = IdSelection.from_mask(attributes.codes["status"] >= 0, filters)
        return selection

    def _follow_attributes(self) -> RecordAttributes:
        if self._attributes is None:
            self._attributes = RecordAttributes.load(self.attributes_path) or RecordAttributes.build(self.catalogue.db)
        self._attributes.follow(self.catalogue.db)
        return self._attributes

    def _record_fields(self, ids: np.ndarray) -> dict[str, list[str]]:
        """The filter fields of these photos as the catalogue has them now (a Milvus store's field source)."""
        return _fields_from(self._follow_attributes())(ids)

    def _sync_store_fields(self) -> int:
        """Rewrite the Milvus rows whose filter fields changed in the catalogue since the store last
        followed it (a status change, a re-ingested record); returns the rows rewritten."""
        store = self._vectors
        if not isinstance(store, MilvusStore) or store.read_only:
            return 0
        seq = change_seq(self.catalogue.db)
        if seq == store.fields_seq:
            return 0
        changed = changed_images(self.catalogue.db, store.fields_seq)
        stale = store.stale_fields(self._record_fields, changed)  # None: too many changes, compare every row
        if len(stale):
            store.refresh_fields(stale, self.catalogue.vectors(stale.tolist()))
            log.info("filter fields of %d photos brought up to date in Milvus", len(stale))
        store.fields_seq = seq
        return int(len(stale))

    @property
    def pinned_index_type(self) -> str | None:
        """The index type `optimize --type` fixed, or None: chosen by size."""
        return self.catalogue.get_meta("index_type") or None

    def optimize_due(self) -> list[str]:
        """Why `index optimize` should run (grown, drifted, wrong kind for the size); empty if not."""
        from artefact.index.stores.optimize import due_reasons

        if self.vectors.kind == MILVUS:
            return []  # Milvus builds and keeps its own index
        return due_reasons(self.vectors, self.vectors.ntotal, self.store_options, self.pinned_index_type)

    def optimize(self, kind: str | None = None, target_recall: float | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        """(Re)build the vector store, tuned to the target recall, and swap it in atomically.

        Args:
            kind: flat, ivf-pq or hnsw pins that type; "auto" (or None) chooses by size.
        Searches keep using the current store until the new one is saved; a killed build
        resumes from its last checkpoint. Holds the writer lock throughout.
        """
        from artefact.index.stores import optimize as opt

        model = self.model
        if model is None:
            raise CatalogueError(f"{self.home} has no vectors yet: index some photos first")
        if self.store_choice.is_milvus:
            raise StoreError(
                f"optimize does not apply to {self.home}: its vectors are served by Milvus ({self.store_choice.spec}), "
                "which builds and tunes its own index (FLAT, exact, unless the store name asks a Milvus server for "
                "another, e.g. milvus://HOST:PORT?index=HNSW; see docs/vector-stores.md)")
        from artefact.index.catalogue import SearchFilters

        with self.writing():
            if self._vectors is not None:
                self.refresh()  # a store not loaded yet is never read: the build reads the catalogue
            if kind is not None:
                with self.catalogue.transaction():
                    self.catalogue.set_meta("index_type", "" if kind == "auto" else kind)
            want = opt.chosen_kind(len(self.catalogue.image_ids()), self.store_options, self.pinned_index_type)
            generation = self.catalogue.generation
            self.selection(SearchFilters())  # filter codes built now and saved with the store: opening stays fast
            source = Catalogue(self.catalogue.path)  # its own connection: searches keep using this one
            try:
                store = opt.build_store(source, self.index_path, model.dim, want, self.store_options, progress=progress)
            finally:
                source.close()
            report = opt.tune(store, target_recall or self.store_options.target_recall, self.store_options.holdout)
            opt.adopt_build_files(store, self.index_path)
            self._save_store(store, generation)
            self._vectors, self._generation = store, generation
            opt.discard_build(self.index_path)
        return {"kind": want, "vectors": store.ntotal, **report}

    def optimize_if_kind_changes(self) -> dict[str, Any] | None:
        """After an ingest: switch flat <-> compressed when the size crossed the threshold (unless pinned)."""
        from artefact.index.stores.optimize import chosen_kind

        if not self.store_options.auto or self.pinned_index_type or self.store_choice.is_milvus:
            return None
        if chosen_kind(self.vectors.ntotal, self.store_options) == self.vectors.kind:
            return None
        log.info("%d vectors: switching the vector store from %s", self.vectors.ntotal, self.vectors.kind)
        return self.optimize()

    # -- edits ------------------------------------------------------------------
    def add_vectors(self, ids: np.ndarray, xb: np.ndarray) -> None:
        self.vectors.add(ids, xb)

    def remove_object(self, object_id: str, actor: str = "cli") -> int:
        """Delete an object, its photos and their vectors; returns the number of vectors removed."""
        self.refresh()
        with self.catalogue.transaction():
            record = self.catalogue.get_object(object_id)
            ids = self.catalogue.remove_object(object_id)
            self.catalogue.log_change(actor, "remove", object_id, {"record": record.to_dict(), "images": len(ids)})
        removed = self.vectors.remove(np.asarray(ids, dtype=np.int64))
        self.features.remove(ids)
        self.mark_synced()
        self.save()
        return removed

    # -- local features ----------------------------------------------------------------
    @property
    def features(self) -> FeatureStore:
        """Local features beside the catalogue; rows still in the catalogue (an installation from
        before the store, an ingest killed before its rows moved) are moved into it first."""
        folder = self.catalogue.path.parent / self.paths.features.name
        if self._features is None or self._features.folder != folder:
            self._features = FeatureStore(folder)
            self.adopt_features()
        return self._features

    def adopt_features(self, image_ids: list[int] | None = None, replaced: list[int] | None = None) -> int:
        """Move local features from catalogue rows (written in the photo's own transaction) into the
        store, then delete those rows; safe to repeat after a crash. Returns the photos moved."""
        store = self._features if self._features is not None else self.features
        if replaced:
            store.remove(replaced)
        moved = 0
        while True:
            if image_ids is None:
                batch = [int(r[0]) for r in self.catalogue.db.execute(
                    "SELECT image_id FROM features ORDER BY image_id LIMIT 2000")]
            else:
                batch, image_ids = image_ids[:2000], image_ids[2000:]
            if not batch:
                break
            rows = self.catalogue.features(batch)
            store.put_many([(i, Features.from_row(*rows[i])) for i in batch if i in rows])
            with self.catalogue.transaction():
                marks = ", ".join("?" * len(batch))
                keys = [str(i) for i in batch]
                # Moving rows into the store changes no photo: keep their change numbers (the change
                # log's triggers would renumber them, and a bundle's catalogue would then differ).
                kept = self.catalogue.db.execute(
                    f"SELECT kind, key, seq FROM row_changes WHERE kind = 'image' AND key IN ({marks})", keys).fetchall()
                self.catalogue.db.execute(f"DELETE FROM features WHERE image_id IN ({marks})", batch)
                self.catalogue.db.execute(f"DELETE FROM row_changes WHERE kind = 'image' AND key IN ({marks})", keys)
                self.catalogue.db.executemany("INSERT INTO row_changes VALUES (?, ?, ?)", [tuple(r) for r in kept])
            moved += len(rows)
            if moved and moved % 100_000 < len(rows):
                log.info("local features moved out of the catalogue: %d photos", moved)
        return moved

    def features_of(self, image_ids: list[int]) -> dict[int, Features]:
        """Local features of these photos (those that have some)."""
        return self.features.get_many(image_ids)

    def images_without_features(self) -> np.ndarray:
        """Ids of catalogue photos with no local features stored (one set difference, no scan per photo)."""
        store = self.features
        store.refresh()
        return np.setdiff1d(self.catalogue.image_ids(), store.ids())

    def set_status(self, object_id: str, status: str, actor: str = "cli") -> str:
        """Change an object's status (vectors stay: filters decide what searches see)."""
        with self.catalogue.transaction():
            before = self.catalogue.set_status(object_id, status)
            self.catalogue.log_change(actor, "set-status", object_id, {"from": before, "to": status.lower()})
        if self.store_choice.is_milvus and not self.store_choice.read_only and self.model is not None:
            self.vectors  # noqa: B018 - opened if not yet: its rows take the new status now, not at the next search
            self._sync_store_fields()
        return before

    # -- reports ----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        from artefact.index.calibration import describe

        model = self.model
        return {
            "home": str(self.home),
            **self.catalogue.counts(),
            "vectors": self.vectors.ntotal,
            "model": model.to_dict() if model else None,
            "index_file": str(self.index_path),
            "index_bytes": store_files.disk_bytes(self.index_path),
            "index": {**self.vectors.describe(), "pinned": self.pinned_index_type, "optimize_due": self.optimize_due()},
            "catalogue_bytes": self.catalogue.path.stat().st_size,
            "generation": self.catalogue.generation,
            "local_features": self.local_features,
            "images_with_features": len(self.features),
            "features_store": self.features.stats(),
            "bundle": json.loads(self.catalogue.get_meta(BUNDLE_META) or "null"),
            "calibration": {
                "with_verification": describe(self.calibration(uses_inliers=True)),
                "similarity_only": describe(self.calibration(uses_inliers=False)),
            },
        }

    def check(self) -> list[str]:
        """Consistency problems between catalogue, index file and stored vectors (empty = healthy).

        Read-only: the store is read from disk as it is and nothing is repaired or saved
        (`repair` does that, under the writer lock).
        """
        return list(self.inspect()["problems"])

    def inspect(self) -> dict[str, Any]:
        """`check`'s problems with the counts they were found on (objects, images, vectors on disk)."""
        problems = self.catalogue.integrity_problems()
        counts = self.catalogue.counts()
        disk = self._read_vectors()
        store = disk.store
        want = self.catalogue.image_ids()
        have = store.ids()
        missing = np.setdiff1d(want, have)
        extra = np.setdiff1d(have, want)
        if disk.problem is not None:
            problems.append(f"vector index {disk.problem}")
        elif len(missing) or len(extra):  # behind alone is harmless: the next open catches up by id
            problems.append(f"vector index is behind the catalogue (generation {disk.generation}, "
                            f"catalogue {self.catalogue.generation})")
        if len(have) != len(np.unique(have)):
            problems.append("vector index holds duplicate ids")
        if len(missing):
            problems.append(f"{len(missing)} catalogue images have no vector in the index")
        if len(extra):
            problems.append(f"{len(extra)} vectors in the index belong to no catalogue image")
        model = self.model
        for ids, mat in self.catalogue.vectors():
            if model is not None and mat.shape[1] != model.dim:
                problems.append(f"stored vectors of dimension {mat.shape[1]}, model says {model.dim}")
                break
            present = np.isin(ids, have)
            if present.any():
                diff = np.abs(store.reconstruct(ids[present]) - mat[present]).max()
                if diff > 1e-5:
                    problems.append(f"index vectors differ from the catalogue's by up to {diff:.2e}")
                    break
        if isinstance(store, MilvusStore):
            stale = store.stale_fields(self._record_fields, np.intersect1d(want, have))
            if len(stale):
                problems.append(f"{len(stale)} vectors in Milvus carry filter fields (status, object type, country, "
                                "source) that differ from the catalogue's")
            if store is not self._vectors:
                store.close()
        problems += self.features.problems(want)
        return {"problems": problems, "objects": counts["objects"], "images": counts["images"],
                "vectors": store.ntotal}

    def repair(self) -> dict[str, Any]:
        """Bring the vector index back in line with the catalogue, under the writer lock: the store
        on disk reconciled by id, or rebuilt whole when unreadable or its vectors differ.

        Returns:
            The problems found before and after, and the vectors added and removed.

        Raises:
            CatalogueError: another process holds the writer lock.
        """
        if self.store_choice.read_only:
            raise StoreError(f"{self.home} reads its Milvus collection read-only ({self.store_choice.spec}): "
                             "repair it on the writer host that fills it")
        with self.writing():
            before = self.check()
            disk = self._read_vectors()
            store = disk.store
            if any("index vectors differ from the catalogue's" in p or "duplicate" in p for p in before):
                # Its vectors cannot be trusted (a Milvus collection is dropped and made afresh).
                store = self._new_store(self.catalogue.model(), fresh=True)
            with self.catalogue.snapshot():
                generation = self.catalogue.generation
                changed = self._reconcile(store)
            if isinstance(store, MilvusStore):
                stale = store.stale_fields(self._record_fields)
                store.refresh_fields(stale, self.catalogue.vectors(stale.tolist()) if len(stale) else None)
                store.fields_seq = change_seq(self.catalogue.db)
                changed["fields"] = int(len(stale))
            if isinstance(self._vectors, MilvusStore) and self._vectors is not store:
                self._vectors.close()
            self._vectors, self._generation, self._store_stamp = store, generation, disk.stamp
            self._unmatched, self.rebuilding = None, None
            if before:
                self.save()
            after = self.check()
        return {"before": before, "after": after, **changed}

def _fields_from(attributes: RecordAttributes) -> FieldSource:
    """A Milvus store's field source over the in-memory filter codes: values as filters compare them."""

    def fields(ids: np.ndarray) -> dict[str, list[str]]:
        ids = np.asarray(ids, dtype=np.int64)
        out: dict[str, list[str]] = {}
        for name in FILTER_FIELDS:
            codes, vocab = attributes.codes[name], attributes.vocab[name]
            inside = (ids >= 0) & (ids < len(codes))
            got = np.full(len(ids), -1, np.int32)
            got[inside] = codes[ids[inside]]
            out[name] = [vocab[c] if c >= 0 else "" for c in got]
        return out

    return fields


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _build_of(described: dict[str, Any]) -> tuple[str, str]:
    """Which build a store (its manifest or describe()) is: kind and build id."""
    return (str(described.get("kind") or "flat"), str((described.get("build") or {}).get("id", "")))


@dataclass
class _OnDisk:
    """The vector store as read from disk, and why it cannot be used as it is (None: it can)."""

    store: VectorStore
    problem: str | None
    generation: int  # the catalogue generation its manifest names (-1: none)
    stamp: tuple[int, int] | None  # the manifest's (mtime, size)
    manifest: dict[str, Any] | None


def _differs(store: VectorStore, manifest: dict[str, Any], catalogue: Catalogue) -> str | None:
    """Why a store whose manifest claims the catalogue's generation does not hold its vectors (None: it does).

    Runs at every open: the id sets are compared by digest (inside SQLite on the catalogue's side),
    and only when the digests differ are the ids fetched to say how.
    """
    have = store.ids()
    count = manifest.get("count")
    if count is not None and int(count) != store.ntotal:
        return (f"the file holds {store.ntotal} vectors, its manifest says {count} and the catalogue has "
                f"{catalogue.image_ids_digest()[0]} photos")
    if ids_digest(have) == catalogue.image_ids_digest():
        return None
    want = catalogue.image_ids()
    missing, extra = len(np.setdiff1d(want, have)), len(np.setdiff1d(have, want))
    return f"holds {store.ntotal} vectors for {len(want)} catalogue photos ({missing} missing, {extra} not in the catalogue)"
