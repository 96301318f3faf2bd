"""Which vector store a home uses (`faiss`, `milvus-lite:PATH`, `milvus://HOST:PORT[/DB]`), remembered by the home.

The first command that names a store for a new home records it in the home; later
commands (and `artefact serve`) use it without being told. Naming another store for a
home that already has one, or Milvus for a home whose vectors are already in FAISS
files, is refused: a home keeps the store it was built with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from artefact.embed.fileio import atomic_write_bytes, private_dir, utc_iso
from artefact.index.home import Home
from artefact.index.stores.base import StoreError

FAISS, MILVUS_LITE, MILVUS_SERVER = "faiss", "milvus-lite", "milvus"
DEFAULT_PORT = 19530
# Vector index types a Milvus server builds for this store (Milvus Lite builds FLAT whatever is asked).
INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "AUTOINDEX")
SPEC_HELP = ("faiss (default), milvus-lite:PATH (a .db file; relative = inside the home) or milvus://HOST:PORT[/DB]; "
             "?readonly=true: a search server that only reads a collection a writer host fills")


class StoreChoiceError(StoreError):
    """A vector store named in a form this program does not read, or one the home was not built with."""


@dataclass(frozen=True)
class StoreChoice:
    """A parsed store name. `location`: the Milvus Lite file (absolute) or the server's host:port."""

    backend: str = FAISS
    location: str = ""
    database: str = ""
    index_type: str = ""
    spec: str = FAISS
    read_only: bool = False  # a search server reading the collection a writer host fills (docs/vector-stores.md)  # as written by the user (a relative Lite path stays relative)

    @property
    def is_milvus(self) -> bool:
        return self.backend != FAISS

    @property
    def server_uri(self) -> str:
        return f"http://{self.location}"

    def same_as(self, other: "StoreChoice") -> bool:
        return (self.backend, self.location, self.database, self.index_type, self.read_only) == (
            other.backend, other.location, other.database, other.index_type, other.read_only)


def parse_choice(text: str, home: Home) -> StoreChoice:
    """Read a store name; a relative Milvus Lite path is taken inside the home.

    Raises:
        StoreChoiceError: not one of the three forms, or a Lite path not ending in .db.
    """
    spec = text.strip()
    if spec.lower() == FAISS:
        return StoreChoice()
    if spec.lower().startswith(MILVUS_LITE + ":"):
        raw, _, options = spec[len(MILVUS_LITE) + 1:].strip().partition("?")
        if not raw.endswith(".db"):
            raise StoreChoiceError(f"{spec!r}: a Milvus Lite store is a file name ending in .db (milvus-lite:vectors.db)")
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else Path(home.root).resolve() / path
        read_only = _read_only(spec, parse_qs(options))
        return StoreChoice(MILVUS_LITE, str(path), spec=f"{MILVUS_LITE}:{raw}" + ("?readonly=true" if read_only else ""),
                           read_only=read_only)
    if spec.lower().startswith(MILVUS_SERVER + "://"):
        parts = urlsplit(spec)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise StoreChoiceError(f"{spec!r}: the port is not a number") from exc
        if not parts.hostname or parts.username or parts.password:
            raise StoreChoiceError(f"{spec!r}: use milvus://HOST:PORT[/DB] (credentials go in the server's own "
                                   "configuration, not in the store name that the home records)")
        database = parts.path.strip("/")
        if "/" in database:
            raise StoreChoiceError(f"{spec!r}: at most one database name after the port")
        query = parse_qs(parts.query)
        index_type = (query.get("index") or [""])[0].upper()
        if index_type and index_type not in INDEX_TYPES:
            raise StoreChoiceError(f"{spec!r}: index {index_type} is not one of {', '.join(INDEX_TYPES)}")
        return StoreChoice(MILVUS_SERVER, f"{parts.hostname}:{port}", database, index_type, spec, _read_only(spec, query))
    raise StoreChoiceError(f"unknown vector store {spec!r}: use {SPEC_HELP}")


def _read_only(spec: str, query: dict[str, list[str]]) -> bool:
    unknown = set(query) - {"index", "readonly"}
    if unknown:
        raise StoreChoiceError(f"{spec!r}: unknown option {', '.join(sorted(unknown))} (index=TYPE, readonly=true)")
    value = (query.get("readonly") or ["false"])[0].lower()
    if value not in ("true", "false"):
        raise StoreChoiceError(f"{spec!r}: readonly is true or false")
    return value == "true"


def remembered(home: Home) -> StoreChoice | None:
    """The store the home recorded, or None (a home from before the choice existed uses FAISS)."""
    path = home.vector_store_choice
    if not path.is_file():
        return None
    try:
        spec = str(json.loads(path.read_text())["vector_store"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreChoiceError(f"{path} is unreadable ({exc}); it names this home's vector store") from exc
    return parse_choice(spec, home)


def settle(home: Home, requested: str | None) -> StoreChoice:
    """The store this home uses: the one it recorded; a store named for a new home is recorded first.

    Raises:
        StoreChoiceError: the name is unreadable, or differs from the store the home already uses.
    """
    stored = remembered(home)
    if requested is None or not requested.strip():
        return stored or StoreChoice()
    want = parse_choice(requested, home)
    if stored is not None:
        if not stored.same_as(want):
            raise StoreChoiceError(
                f"the home {home.root} keeps its vectors in {stored.spec}, not {want.spec}: a home keeps the store "
                "it was built with. Leave --vector-store / ARTEFACT_VECTOR_STORE unset to use it, or index into a "
                "new --home to use another store (the catalogue is the source of truth: nothing is lost)")
        return stored
    if not want.is_milvus:
        return want
    if home.has_catalogue() and not want.read_only:
        raise StoreChoiceError(
            f"the home {home.root} already keeps its vectors in FAISS files; a home keeps the store it was built "
            f"with. To serve this catalogue from {want.spec}, index it into a new --home with --vector-store")
    private_dir(home.root)
    atomic_write_bytes(home.vector_store_choice,
                       json.dumps({"vector_store": want.spec, "chosen_at": utc_iso()}, indent=2).encode())
    return want
