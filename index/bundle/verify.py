"""Reading a bundle: signature, every part's size and SHA-256, completeness; optionally unpacking it as it streams by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from artefact.index.bundle.container import (
    DIGEST_MEMBER,
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    BundleReader,
    part_member,
)
from artefact.index.bundle.errors import BundleFormatError, BundleIntegrityError
from artefact.index.bundle.manifest import MAX_MANIFEST_BYTES, Manifest
from artefact.index.bundle.signing import MAX_SIGNATURE_BYTES, check_signature


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature, parts and completeness were checked."""

    path: Path
    manifest: Manifest
    signed_by: str | None  # trusted key id; None for an unsigned bundle accepted as such
    file_bytes: int

    def to_dict(self) -> dict[str, object]:
        m = self.manifest
        return {
            "file": str(self.path),
            "file_bytes": self.file_bytes,
            "bundle_id": m.bundle_id,
            "kind": m.kind,
            "base_bundle_id": m.base_bundle_id,
            "created": m.created,
            "issuer": m.issuer,
            "signed_by": self.signed_by,
            "catalogue": m.catalogue,
            "model": {k: v for k, v in m.model.items() if k != "description"},
            "parts": len(m.parts),
            "part_bytes": m.total_bytes,
        }


def read_bundle(
    path: Path,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    allow_unsigned: bool = False,
    on_manifest: Callable[[Manifest, str | None], None] | None = None,
    extract_to: Path | None = None,
) -> VerifiedBundle:
    """Check a bundle from end to end, in one streaming pass.

    Args:
        trusted: public keys by key id (see `signing.trusted_keys`).
        on_manifest: called once the manifest is trusted and before any part is read, so that
            an import can refuse a stale or out-of-order bundle at once.
        extract_to: when given, each part is written there (under its manifest path) as it is
            hashed; the caller removes the folder if this raises.

    Raises:
        BundleFormatError, BundleSignatureError, BundleIntegrityError: with what is wrong and what to do.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise BundleFormatError(f"cannot open bundle {path}: {exc.strerror or exc}") from exc
    with f:
        reader = BundleReader(f, path.name)
        first = reader.next_member()
        if first is None or first[0] != MANIFEST_MEMBER:
            raise BundleFormatError(f"{path} is not an artefact-search bundle (it does not start with a manifest)")
        manifest_bytes = reader.read_small(first[1], MAX_MANIFEST_BYTES, "the manifest")
        digest = reader.next_member()
        if digest is None or digest[0] != DIGEST_MEMBER:
            raise BundleIntegrityError(f"{path}: the manifest's checksum is missing; the file is damaged")
        if reader.read_small(digest[1], 128, "the manifest checksum") != _digest_line(manifest_bytes):
            raise BundleIntegrityError(
                f"{path}: the manifest does not match its checksum: the file was changed or corrupted"
            )
        member = reader.next_member()
        signature = None
        if member is not None and member[0] == SIGNATURE_MEMBER:
            signature = reader.read_small(member[1], MAX_SIGNATURE_BYTES, "the signature")
            member = reader.next_member()
        signed_by = check_signature(signature, manifest_bytes, trusted, allow_unsigned)
        manifest = Manifest.from_bytes(manifest_bytes)
        if on_manifest is not None:
            on_manifest(manifest, signed_by)
        expected = {part_member(i + 1): p for i, p in enumerate(manifest.parts)}
        order = {name: i for i, name in enumerate(expected)}
        seen: set[str] = set()
        last = -1
        while member is not None:
            name, size = member
            part = expected.get(name)
            if part is None or order[name] <= last:
                raise BundleIntegrityError(
                    f"{path}: member {name!r} is not a part listed in the signed manifest (or out of place); "
                    "the file was changed"
                )
            if size != part.size:
                raise BundleIntegrityError(
                    f"{path}: part {part.path} holds {size} bytes, the manifest says {part.size}: the file was changed"
                )
            h = hashlib.sha256()
            out = None
            if extract_to is not None:
                dest = extract_to / part.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                out = open(dest, "xb")
            try:
                def sink(chunk: bytes) -> None:
                    h.update(chunk)
                    if out is not None:
                        out.write(chunk)

                reader.read_member(size, sink, f"part {part.path}")
            finally:
                if out is not None:
                    out.close()
            if h.hexdigest() != part.sha256:
                raise BundleIntegrityError(
                    f"{path}: part {part.path} does not match its SHA-256 in the manifest: the file was "
                    "changed or corrupted in transit; get a fresh copy from the issuing agency"
                )
            seen.add(name)
            last = order[name]
            member = reader.next_member()
        missing = [p.path for name, p in expected.items() if name not in seen]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise BundleIntegrityError(
                f"{path} is incomplete: {len(missing)} part(s) listed in the manifest are missing ({shown}); "
                "copy the complete file again"
            )
        return VerifiedBundle(path, manifest, signed_by, reader.offset)


def _digest_line(manifest: bytes) -> bytes:
    return (hashlib.sha256(manifest).hexdigest() + "\n").encode("ascii")
