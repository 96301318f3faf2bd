"""Export: one bundle file with a consistent catalogue snapshot, its vectors, and the model, or only what changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artefact.embed.fileio import atomic_path, atomic_write_bytes, utc_iso
from artefact.index.bundle import model_files, rows
from artefact.index.bundle.container import DIGEST_MEMBER, MANIFEST_MEMBER, SIGNATURE_MEMBER, BundleWriter, part_member
from artefact.index.bundle.errors import BundleError, BundleOrderError
from artefact.index.bundle.manifest import (
    CATALOGUE,
    DELTA,
    DELTA_ROWS,
    FULL,
    MODEL,
    VECTORS,
    VECTORS_MANIFEST,
    Manifest,
    Part,
)
from artefact.index.bundle.signing import key_id, load_private_key, signature_bytes
from artefact.index.catalogue import Catalogue
from artefact.index.home import Home
from artefact.index.library import Library
from artefact.index.stores import files as store_files

log = logging.getLogger(__name__)

BUNDLE_ID = re.compile(r"B-(\d+)")
DELTA_FILE = "delta.sqlite"


@dataclass(frozen=True)
class ExportReport:
    """What was written: the file, its manifest, its size and how long it took."""

    path: Path
    manifest: Manifest
    file_bytes: int
    seconds: float
    signed_by: str | None
    delta_rows: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "file": str(self.path), "file_bytes": self.file_bytes, "seconds": round(self.seconds, 3),
            "bundle_id": m.bundle_id, "kind": m.kind, "base_bundle_id": m.base_bundle_id, "created": m.created,
            "issuer": m.issuer, "signed_by": self.signed_by, "catalogue": m.catalogue, "parts": len(m.parts),
            "model_included": m.model_included, "delta_rows": self.delta_rows,
        }


def installation_id(home: Home) -> str:
    """This home's own id (made once), named in every bundle it issues."""
    path = home.installation_id
    if not path.is_file():
        home.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass  # made by another process a moment ago
        else:
            with os.fdopen(fd, "w") as f:
                f.write(uuid.uuid4().hex + "\n")
    return path.read_text().strip()


def issued(home: Home) -> dict[str, Manifest]:
    """Bundles this home has issued, by id (their manifests are kept for later deltas)."""
    out = {}
    if home.bundles_issued.is_dir():
        for path in sorted(home.bundles_issued.glob("*.json")):
            data = path.read_bytes()
            if data.strip() in (b"", b"{}"):
                continue  # an id reserved by an export in progress or one that failed
            out[path.stem] = Manifest.from_bytes(data)
    return out


def _reserve_id(home: Home) -> str:
    """The next id, B-0001, B-0002 ...; reserved by creating its record file exclusively."""
    home.bundles_issued.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in home.bundles_issued.glob("B-*.json") if (m := BUNDLE_ID.fullmatch(p.stem))]
    n = max(numbers, default=0) + 1
    while True:
        bundle_id = f"B-{n:04d}"
        try:
            fd = os.open(home.bundles_issued / f"{bundle_id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return bundle_id


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _part(path: Path, bundle_path: str, role: str) -> tuple[Part, Path]:
    return Part(bundle_path, role, path.stat().st_size, _sha256(path)), path


def _stage_vectors(home: Home, staging: Path) -> set[str]:
    """Vectors for the snapshot: the home's store as built (any kind), reconciled by id with the snapshot.

    The store's files are linked or copied, not rebuilt (a tuned IVF-PQ or HNSW store travels
    with its training and parameters, file for file). A store saved at another generation than
    the snapshot's (a write came between them) has its generation dropped, so that opening
    reconciles it by id with exactly the snapshot and saves the difference.

    Returns:
        The names of the store files in the staging folder, manifest included.
    """
    source = home.current_catalogue().parent / home.vectors.name
    store_files.copy_store(source, staging)
    staged = staging / home.vectors.name
    manifest = store_files.read_manifest(staged)
    db = rows.connect(staging / home.catalogue.name)
    try:
        snapshot_generation = rows.state(db)["generation"]
    finally:
        db.close()
    if manifest is not None and manifest.get("generation") != snapshot_generation:
        store_files.manifest_path(staged).write_text(json.dumps({**manifest, "generation": -1}))
    library = Library(staging)
    try:
        if library.model is not None:
            library.vectors  # loads, reconciles with the snapshot and saves (its generation differs)
    finally:
        library.close()
    return store_files.in_use(staging / home.vectors.name)


def export_bundle(
    home: Home | Path,
    out: Path,
    *,
    since: str | None = None,
    without_model: bool = False,
    signing_key: Path | None = None,
    passphrase: bytes | None = None,
) -> ExportReport:
    """Write a full bundle, or with `since` a delta holding what changed after that bundle.

    Args:
        since: id of a bundle this home issued earlier (the delta applies on top of it).
        without_model: leave the model files out; the receiver must hold the same weights.
        signing_key: Ed25519 private key (PEM) that signs the manifest.

    Raises:
        BundleError: nothing to export, unknown base bundle, or a model change since the base.
        SigningKeyError: the key cannot be used.
    """
    t0 = time.perf_counter()
    home = home if isinstance(home, Home) else Home(home)
    if not home.has_catalogue():
        raise BundleError(f"no catalogue in {home.root}: nothing to export (index objects first, or pass --home)")
    key = load_private_key(signing_key, passphrase) if signing_key else None
    base = None
    if since is not None:
        known = issued(home)
        base = known.get(since)
        if base is None:
            raise BundleOrderError(
                f"bundle {since} was not issued from {home.root} (issued here: {', '.join(known) or 'none'}); "
                "a delta can only be made on a bundle this home exported"
            )
    issuer = installation_id(home)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-export-", dir=home.root))
    bundle_id = _reserve_id(home)
    record = home.bundles_issued / f"{bundle_id}.json"
    try:
        snap = staging / home.catalogue.name
        delta = staging / DELTA_FILE
        live = Catalogue(home.current_catalogue())  # also brings an older catalogue to the change-tracking schema
        try:
            if base is None:
                rows.snapshot(live.db, snap)
        finally:
            live.close()
        features = home.current_catalogue().parent / home.features.name
        if base is None:
            rows.fill_features(snap, features)
        delta_rows = None
        if base is None:
            db = rows.connect(snap)
            try:
                db.execute("DELETE FROM meta WHERE key = ?", (rows.BUNDLE_META,))  # the issuer's own import record
                state = rows.state(db)
                raw = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            finally:
                db.close()
            raw_model = raw[0] if raw else None
        else:
            state, raw_model, delta_rows = rows.write_delta(home.current_catalogue(), delta, base.catalogue)
            delta_rows["features"] = rows.fill_features(delta, features)
        description = json.loads(raw_model) if raw_model else None
        parts: list[tuple[Part, Path]] = []
        links = []
        if base is None:
            store_names = _stage_vectors(home, staging)
            parts.append(_part(snap, home.catalogue.name, CATALOGUE))
            for name in sorted(store_names):  # the files the staged store's manifest names, no locks or leftovers
                role = VECTORS_MANIFEST if name == home.vectors_manifest.name else VECTORS
                parts.append(_part(staging / name, name, role))
        else:
            base_model = (base.model.get("description") or {}).get("weights_sha256")
            if description and base_model and description.get("weights_sha256") != base_model:
                raise BundleOrderError(
                    f"the catalogue's model changed since bundle {since}; a delta cannot carry that: export a full bundle"
                )
            if state["change_seq"] < base.change_seq:
                raise BundleOrderError(
                    f"this catalogue is behind bundle {since} (change {state['change_seq']} < {base.change_seq}); "
                    "it was restored or replaced since: export a full bundle"
                )
            parts.append(_part(delta, DELTA_FILE, DELTA_ROWS))
        weights = (description or {}).get("weights_sha256", "")
        weights_included = False
        if base is None and not without_model:
            files, links = model_files.collect(home.models)
            for bundle_path, path in files:
                part = _part(path, bundle_path, MODEL)
                parts.append(part)
                weights_included = weights_included or part[0].sha256 == weights
        manifest = Manifest(
            bundle_id=bundle_id,
            kind=FULL if base is None else DELTA,
            created=utc_iso(),
            issuer=issuer,
            catalogue=state,
            model={
                "description": description,
                "weights_sha256": weights,
                "included": base is None and not without_model,
                "weights_included": weights_included,
            },
            parts=tuple(p for p, _ in parts),
            links=tuple(links),
            base=None if base is None else {
                "bundle_id": base.bundle_id, "created": base.created, **{k: base.catalogue[k] for k in
                                                                        ("change_seq", "generation", "history_id")},
            },
        )
        manifest.validate()
        manifest_bytes = manifest.to_bytes()
        out = Path(out)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            writer = BundleWriter(f)
            writer.add_bytes(MANIFEST_MEMBER, manifest_bytes)
            writer.add_bytes(DIGEST_MEMBER, (hashlib.sha256(manifest_bytes).hexdigest() + "\n").encode("ascii"))
            if key is not None:
                writer.add_bytes(SIGNATURE_MEMBER, signature_bytes(key, manifest_bytes))
            for i, (part, path) in enumerate(parts):
                writer.add_file(part_member(i + 1), path, part.size, part.sha256)
            writer.close()
        atomic_write_bytes(record, manifest_bytes)
    except BaseException:
        record.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - t0
    log.info("exported %s (%d parts, %d bytes) in %.1f s", manifest.label(), len(parts), out.stat().st_size, seconds)
    return ExportReport(out, manifest, out.stat().st_size, seconds,
                        key_id(key.public_key()) if key is not None else None, delta_rows)
