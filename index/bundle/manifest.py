"""The bundle manifest: what a bundle holds (every part with size and SHA-256) and which catalogue state it is."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from artefact.index.bundle.errors import BundleFormatError

FORMAT = "artefact-bundle"
FORMAT_VERSION = 1
FULL = "full"
DELTA = "delta"
KINDS = (FULL, DELTA)

# Roles of parts. A full bundle holds the catalogue and its vector index; a delta holds the
# changed rows. Model files (weights, exported runtimes) go into the home's models/ folder.
CATALOGUE = "catalogue"
VECTORS = "vectors"
VECTORS_MANIFEST = "vectors-manifest"
DELTA_ROWS = "delta"
MODEL = "model"
ROLES = (CATALOGUE, VECTORS, VECTORS_MANIFEST, DELTA_ROWS, MODEL)
MODELS_PREFIX = "models/"

MAX_MANIFEST_BYTES = 32 * 1024 * 1024  # tens of thousands of model files still fit; a hostile size does not
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BUNDLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Part:
    """One file of the bundle: where it goes (relative to the home), its size and SHA-256."""

    path: str
    role: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "role": self.role, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Link:
    """A symbolic link inside models/ (the Hugging Face cache links snapshots to blobs)."""

    path: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target}


@dataclass(frozen=True)
class Manifest:
    """Signed description of a bundle.

    `catalogue` describes the catalogue state the bundle brings a home to (generation,
    change number, counts); `base` (deltas only) the state it must be applied on.
    """

    bundle_id: str
    kind: str
    created: str
    issuer: str
    catalogue: dict[str, Any]
    model: dict[str, Any]
    parts: tuple[Part, ...]
    links: tuple[Link, ...] = ()
    base: dict[str, Any] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_bundle_id(self) -> str | None:
        return str(self.base["bundle_id"]) if self.base else None

    @property
    def total_bytes(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def change_seq(self) -> int:
        return int(self.catalogue["change_seq"])

    @property
    def model_included(self) -> bool:
        return bool(self.model.get("included"))

    @property
    def weights_sha256(self) -> str:
        return str(self.model.get("weights_sha256") or "")

    def label(self) -> str:
        """"bundle B-0042 (full, catalogue as of 2026-11-30)" for messages."""
        return f"bundle {self.bundle_id} ({self.kind}, catalogue as of {self.created[:10]})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "bundle_id": self.bundle_id,
            "kind": self.kind,
            "created": self.created,
            "issuer": self.issuer,
            "base": self.base,
            "catalogue": self.catalogue,
            "model": self.model,
            "parts": [p.to_dict() for p in self.parts],
            "links": [lk.to_dict() for lk in self.links],
            **({"extra": self.extra} if self.extra else {}),
        }

    def to_bytes(self) -> bytes:
        """The exact bytes that are hashed and signed."""
        return (json.dumps(self.to_dict(), indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        """Parse and validate a manifest.

        Raises:
            BundleFormatError: not a manifest of a format this program reads.
        """
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BundleFormatError(f"the bundle's manifest is not valid JSON ({exc}); the file is damaged") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BundleFormatError("the file is not an artefact-search catalogue bundle (no bundle manifest)")
        if d.get("format_version") != FORMAT_VERSION:
            raise BundleFormatError(
                f"bundle format version {d.get('format_version')!r} is not one this program reads "
                f"({FORMAT_VERSION}); upgrade artefact-search at this post"
            )
        try:
            parts = tuple(Part(str(p["path"]), str(p["role"]), int(p["size"]), str(p["sha256"])) for p in d["parts"])
            links = tuple(Link(str(lk["path"]), str(lk["target"])) for lk in d.get("links") or ())
            m = cls(
                bundle_id=str(d["bundle_id"]), kind=str(d["kind"]), created=str(d["created"]),
                issuer=str(d["issuer"]), catalogue=dict(d["catalogue"]), model=dict(d["model"]),
                parts=parts, links=links, base=dict(d["base"]) if d.get("base") else None,
                extra=dict(d.get("extra") or {}),
            )
            int(m.catalogue["change_seq"]), int(m.catalogue["generation"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"the bundle's manifest lacks or mangles a field ({exc!r}); the file is damaged") from exc
        m.validate()
        return m

    def validate(self) -> None:
        """Refuse anything an import could misuse: unsafe paths, odd roles, duplicate parts."""
        if not _BUNDLE_ID.fullmatch(self.bundle_id):
            raise BundleFormatError(f"bundle id {self.bundle_id!r} is not a plain name")
        if self.kind not in KINDS:
            raise BundleFormatError(f"bundle kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == DELTA and not self.base:
            raise BundleFormatError("a delta bundle must name the bundle it was made on")
        seen: set[str] = set()
        for p in self.parts:
            check_relative_path(p.path)
            if p.role not in ROLES:
                raise BundleFormatError(f"part {p.path}: unknown role {p.role!r}")
            if (p.role == MODEL) != p.path.startswith(MODELS_PREFIX):
                raise BundleFormatError(f"part {p.path}: only model files may go under {MODELS_PREFIX}")
            if p.role != MODEL and ("/" in p.path or p.path.endswith(("-wal", "-shm", "-journal"))):
                raise BundleFormatError(f"part {p.path}: catalogue and vector files are plain file names")
            if p.size < 0 or not _SHA256.fullmatch(p.sha256):
                raise BundleFormatError(f"part {p.path}: bad size or SHA-256 in the manifest")
            if p.path in seen:
                raise BundleFormatError(f"part {p.path} is listed twice")
            seen.add(p.path)
        for lk in self.links:
            check_relative_path(lk.path)
            if not lk.path.startswith(MODELS_PREFIX) or lk.path in seen:
                raise BundleFormatError(f"link {lk.path}: links may only point inside {MODELS_PREFIX}")
            seen.add(lk.path)
            resolved = PurePosixPath(lk.path).parent / lk.target
            if lk.target.startswith("/") or not _normal(resolved).startswith(MODELS_PREFIX):
                raise BundleFormatError(f"link {lk.path} -> {lk.target} points outside {MODELS_PREFIX}")
        roles = [p.role for p in self.parts]
        needed = (CATALOGUE,) if self.kind == FULL else (DELTA_ROWS,)
        for role in needed:
            if roles.count(role) != 1:
                raise BundleFormatError(f"a {self.kind} bundle must hold exactly one {role} part")


def check_relative_path(path: str) -> None:
    """A part's path must stay inside the home: relative, no '..', no odd characters."""
    pure = PurePosixPath(path)
    if (
        not path
        or len(path) > 1024
        or path.startswith("/")
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
        or not path.isprintable()
        or pure.as_posix() != path
    ):
        raise BundleFormatError(f"the manifest names an unsafe path {path!r}; the bundle is refused")


def _normal(path: PurePosixPath) -> str:
    out: list[str] = []
    for part in path.parts:
        if part == "..":
            if not out:
                return "/"  # escapes the root
            out.pop()
        elif part != ".":
            out.append(part)
    return "/".join(out)
