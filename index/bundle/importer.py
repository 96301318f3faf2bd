"""Import: verify a bundle, refuse it if stale or out of order, build the new catalogue beside the old, switch at once.

Nothing in the home changes until the whole bundle is verified and the new catalogue version is
complete; then one link is replaced. A running service keeps answering from the old catalogue
until its next `Library.refresh()`, which moves it to the new catalogue and vectors together.
Audit logs, access keys and trusted keys are never touched.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from artefact.embed.fileio import utc_iso
from artefact.embed.models import ModelDescription
from artefact.index.bundle import model_files, rows, versions
from artefact.index.bundle.errors import BundleError, BundleIntegrityError, BundleModelError, BundleOrderError
from artefact.index.bundle.export import DELTA_FILE
from artefact.index.bundle.manifest import DELTA, MODELS_PREFIX, Manifest
from artefact.index.bundle.signing import trusted_keys
from artefact.index.bundle.verify import VerifiedBundle, read_bundle
from artefact.index.catalogue import SCHEMA_VERSION
from artefact.index.home import Home
from artefact.index.library import Library
from artefact.index.stores import files as store_files

log = logging.getLogger(__name__)

ModelCheck = Callable[[ModelDescription], bool]


@dataclass(frozen=True)
class Held:
    """What the home holds now: its bundle record, change number, model and size."""

    record: dict[str, Any] | None = None
    change_seq: int | None = None
    schema_version: int = 0
    model: dict[str, Any] | None = None
    objects: int = 0


@dataclass(frozen=True)
class ImportReport:
    bundle: VerifiedBundle
    version: Path
    seconds: float
    model_files: int
    model_changed: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.bundle.to_dict(), "version": str(self.version), "seconds": round(self.seconds, 3),
                "model_files": self.model_files, "model_changed": self.model_changed, "notes": self.notes}


def held_state(home: Home) -> Held:
    """Read what the home's catalogue is now, writing nothing."""
    path = home.current_catalogue()
    if not path.is_file():
        return Held()
    db = rows.connect(path)
    try:
        db.execute("PRAGMA query_only = 1")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return Held()
        model = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        return Held(
            record=rows.bundle_record(db),
            change_seq=rows.state(db)["change_seq"] if "row_changes" in tables else None,
            schema_version=int(db.execute("PRAGMA user_version").fetchone()[0]),
            model=json.loads(model[0]) if model else None,
            objects=int(db.execute("SELECT count(*) FROM objects").fetchone()[0]) if "objects" in tables else 0,
        )
    except sqlite3.DatabaseError as exc:
        raise BundleError(f"cannot read the catalogue in {home.root} ({exc}); repair or move it first") from exc
    finally:
        db.close()


def _identity(d: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    return ModelDescription.from_dict(dict(d)).identity() if d else None


def check_order(m: Manifest, held: Held, allow_older: bool) -> None:
    """Refuse a rollback, a delta on another bundle, or a delta onto a catalogue changed locally.

    Raises:
        BundleOrderError: naming the bundle the home holds and the one that is missing.
    """
    schema = int(m.catalogue.get("schema_version", 0))
    if schema > SCHEMA_VERSION:
        raise BundleOrderError(
            f"{m.label()} holds a catalogue of schema {schema}, newer than this program reads ({SCHEMA_VERSION}); "
            "upgrade artefact-search at this post first"
        )
    rec = held.record
    if m.kind == DELTA:
        if rec is None:
            raise BundleOrderError(
                f"{m.label()} is a delta made on bundle {m.base_bundle_id}, but this home holds no bundle yet: "
                "import a full bundle first, then deltas in order"
            )
        if rec.get("issuer") != m.issuer:
            raise BundleOrderError(
                f"{m.label()} was issued by installation {m.issuer}, but this home's catalogue came from "
                f"{rec.get('issuer')}: a delta only applies on its own issuer's bundles; import a full bundle"
            )
        if rec.get("bundle_id") == m.bundle_id:
            raise BundleOrderError(f"bundle {m.bundle_id} is already imported here; nothing to do")
        held_seq = int(rec.get("change_seq", -1))
        if rec.get("bundle_id") != m.base_bundle_id or held_seq != int(m.base["change_seq"] if m.base else -1):
            if held_seq >= m.change_seq:
                raise BundleOrderError(
                    f"this home already holds bundle {rec.get('bundle_id')} (as of {str(rec.get('created'))[:10]}), "
                    f"newer than delta {m.bundle_id}; nothing to do"
                )
            raise BundleOrderError(
                f"{m.label()} is a delta made on bundle {m.base_bundle_id}, but this home holds bundle "
                f"{rec.get('bundle_id')}: import bundle {m.base_bundle_id} first (deltas apply in order), "
                "or import a newer full bundle"
            )
        if held.change_seq is not None and held.change_seq != held_seq:
            raise BundleOrderError(
                f"this home's catalogue was changed here after bundle {rec.get('bundle_id')} was imported; "
                f"delta {m.bundle_id} applies only to the catalogue as imported: import a full bundle instead"
            )
        if schema != held.schema_version:
            raise BundleOrderError(
                f"delta {m.bundle_id} was made on catalogue schema {schema} but this home's is "
                f"{held.schema_version}: import a full bundle"
            )
        return
    if rec is None or allow_older:
        return
    if rec.get("issuer") == m.issuer:
        older = m.change_seq < int(rec.get("change_seq", 0))
    else:
        older = m.created < str(rec.get("created", ""))
    if older:
        raise BundleOrderError(
            f"{m.label()} is older than the catalogue this home holds (bundle {rec.get('bundle_id')}, as of "
            f"{str(rec.get('created'))[:10]}): importing it would bring back removed or outdated records. "
            "Pass --allow-older to roll back on purpose"
        )


def check_model(home: Home, m: Manifest, held: Held, model_available: ModelCheck | None) -> None:
    """A bundle without its weights needs a post that already holds exactly that model.

    Raises:
        BundleModelError: naming the model and its checksum.
    """
    description = m.model.get("description")
    if not description or m.model.get("weights_included"):
        return
    if _identity(held.model) == _identity(description):
        return
    if model_files.holds_weights(home.models, m.weights_sha256):
        return
    if model_available is not None and model_available(ModelDescription.from_dict(description)):
        return
    label = ModelDescription.from_dict(description).label()
    why = ("they were not in the issuing home's models folder" if m.model_included
           else "it was exported with --without-model")
    raise BundleModelError(
        f"{m.label()} does not carry its model's weights ({why}), and this home cannot load {label} "
        f"(weights sha256 {m.weights_sha256[:16]}...): install the same model here (put its weights in "
        f"{home.models}, or the program version that ships them), or import a bundle exported with the model"
    )


@contextmanager
def _write_lock(home: Home) -> Iterator[None]:
    """The same writer lock as `Library.writing()`: no ingest or other import runs meanwhile."""
    fd = os.open(str(home.write_lock), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BundleError(f"another process is writing to {home.root}; wait for it to finish, then import") from exc
        yield
    finally:
        os.close(fd)


def _copy_vectors(source_dir: Path, staging: Path, home: Home) -> None:
    """Start the new version from the current vectors (any store kind); opening reconciles them by id."""
    store_files.copy_store(source_dir / home.vectors.name, staging, generation=-1)


def _prepare_delta(home: Home, staging: Path, m: Manifest) -> None:
    live = home.current_catalogue()
    source = sqlite3.connect(str(live))
    try:
        rows.snapshot(source, staging / home.catalogue.name)
    finally:
        source.close()
    rows.fill_features(staging / home.catalogue.name, live.parent / home.features.name)
    _copy_vectors(live.parent, staging, home)
    delta = staging / DELTA_FILE
    assert m.base is not None  # validated: a delta names its base
    rows.apply_delta(staging / home.catalogue.name, delta, m.base, m.catalogue)
    delta.unlink()


def _finish(staging: Path, home: Home, record: Mapping[str, Any]) -> None:
    """Stamp the new catalogue with its bundle and make sure catalogue and vectors agree."""
    db = rows.connect(staging / home.catalogue.name)
    try:
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BundleIntegrityError(f"the bundle's catalogue is damaged ({problem}); refused")
        rows.set_bundle_record(db, record)
    finally:
        db.close()
    library = Library(staging)
    try:
        library.features  # moves the bundle's local-feature rows into the new version's own store now
        if library.model is not None:
            have = np.sort(library.vectors.ids())
            want = np.sort(library.catalogue.image_ids())
            if not np.array_equal(have, want):
                raise BundleIntegrityError("the bundle's vector index does not match its catalogue; refused")
            # Loading saved the vectors if it had to reconcile them (a delta); a full bundle's are as shipped.
    finally:
        library.close()


def import_bundle(
    home: Home | Path,
    bundle: Path,
    *,
    trusted: Mapping[str, Ed25519PublicKey] | None = None,
    allow_unsigned: bool = False,
    allow_older: bool = False,
    model_available: ModelCheck | None = None,
) -> ImportReport:
    """Verify and import a bundle into `home`.

    Args:
        trusted: keys to accept (default: HOME/trusted-keys/*.pub).
        allow_unsigned: accept a bundle with no signature.
        allow_older: accept a full bundle older than the catalogue held (a deliberate rollback).
        model_available: asked whether a model the bundle does not carry can be loaded here.

    Raises:
        BundleError (and subclasses): the bundle was refused; the home is as it was.
    """
    t0 = time.perf_counter()
    home = home if isinstance(home, Home) else Home(home)
    trusted = trusted if trusted is not None else trusted_keys(home)
    made_root = not home.root.exists()
    made_versions = not home.catalogue_versions.exists()
    staging: Path | None = None
    held = held_state(home)

    def early_checks(m: Manifest, signed_by: str | None) -> None:
        check_order(m, held, allow_older)
        check_model(home, m, held, model_available)

    try:
        staging = versions.new_staging(home)
        verified = read_bundle(Path(bundle), trusted, allow_unsigned=allow_unsigned,
                               on_manifest=early_checks, extract_to=staging)
        m = verified.manifest
        with _write_lock(home):
            held = held_state(home)  # again, now that no one else can write
            check_order(m, held, allow_older)
            if m.kind == DELTA:
                _prepare_delta(home, staging, m)
            record = {
                "bundle_id": m.bundle_id, "kind": m.kind, "created": m.created, "issuer": m.issuer,
                "base_bundle_id": m.base_bundle_id, "change_seq": m.change_seq,
                "generation": m.catalogue["generation"], "imported_at": utc_iso(), "signed_by": verified.signed_by,
            }
            _finish(staging, home, record)
            placed = model_files.install(staging / MODELS_PREFIX.rstrip("/"), home.models, list(m.links))
            shutil.rmtree(staging / MODELS_PREFIX.rstrip("/"), ignore_errors=True)
            version = versions.install(home, staging, m.bundle_id)
            staging = None
            previous = versions.switch(home, version)
            versions.prune(home, previous)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder, made in ((home.catalogue_versions, made_versions), (home.root, made_root)):
            if made and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    notes = []
    if held.record is None and held.objects:
        notes.append(f"replaced a catalogue of {held.objects} objects that did not come from a bundle")
    new_model = m.model.get("description")
    changed = held.model is not None and _identity(held.model) != _identity(new_model)
    if changed:
        notes.append("the catalogue's model changed: restart the service so that it loads the new model")
    seconds = time.perf_counter() - t0
    log.info("imported %s in %.1f s", m.label(), seconds)
    return ImportReport(verified, version, seconds, placed, changed, notes)
