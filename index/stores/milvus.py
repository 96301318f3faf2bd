"""Vectors served from Milvus (`milvus-lite:PATH` or `milvus://HOST:PORT[/DB]`): one collection per model, filters as scalar fields.

Milvus keeps the vectors itself, so this store has no files of its own beyond the manifest
beside the catalogue (which generation and which change of the filter fields it reflects).
Each photo's filter fields (status, object type, country, source; lower-cased as filters
compare them) are scalar fields of its row and searches push the filter down as a Milvus
filter expression; the hits are still checked against the catalogue's own id selection,
so a row whose fields lag the catalogue can never leak through a filter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from artefact.index.records import FILTER_FIELDS
from artefact.index.stores import files
from artefact.index.stores.base import Hits, IdSelection, StoreError
from artefact.index.stores.choice import StoreChoice

log = logging.getLogger(__name__)


class _LiteIteratorNoise(logging.Filter):
    """Milvus Lite has no server-side iterator timestamp; pymilvus warns on every id read and falls back correctly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_LiteIteratorNoise())

MILVUS = "milvus"
FORMAT = 1
ID, VECTOR = "id", "vector"
MAX_TOPK = 16_384  # Milvus refuses a larger limit per search
BATCH = 1_000  # rows per insert / get / delete request (well under Milvus's 64 MB message limit at 1280-d)
ID_LIST_MAX = 5_000  # a selection without filters goes down as `id in [...]` up to this many ids
VARCHAR_MAX = 65_535  # bytes; a record field holds at most 10,000 characters (records.MAX_FIELD_LENGTH)
INDEX_TYPE = "FLAT"  # exact, as the FAISS flat store; a Milvus server may be given another (docs/vector-stores.md)

# Returns the filter fields of these photos as stored, lower-cased; "" for a photo the catalogue lacks.
FieldSource = Callable[[np.ndarray], dict[str, list[str]]]


class StoreUnavailableError(StoreError):
    """The Milvus server (or the Milvus Lite file) cannot be reached or opened right now."""


def collection_name(model: dict[str, Any]) -> str:
    """One collection per model fingerprint: vectors of another model never share it."""
    identity = [model.get("backend"), model.get("model_name"), model.get("weights_sha256"), int(model["dim"])]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:24]
    return f"artefact_{int(model['dim'])}d_{digest}"


def quote(value: str) -> str:
    """A Milvus string literal holding exactly `value`: no filter-expression injection.

    Milvus reads backslash escapes inside double quotes; `\\u` escapes it does not, so
    characters other than the backslash, the quote and the three text controls a record
    value may hold (tab, newline, carriage return) go in as they are.
    """
    out = ['"']
    for c in value:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            raise ValueError(f"control character U+{ord(c):04X} cannot appear in a filter value")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _quotable(value: str) -> bool:
    return not any((ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F for c in value)


def filter_expression(filters: Any) -> str | None:
    """SearchFilters as a Milvus expression (None: no restriction); same meaning as `SearchFilters.where()`."""
    clauses = []
    for name in FILTER_FIELDS:
        values = sorted({v.lower() for v in getattr(filters, name)})
        if values:
            # A value no record can hold (a control character) matches nothing: left out, not an error.
            literals = [quote(v) for v in values if _quotable(v)]
            clauses.append(f"{name} in [{', '.join(literals)}]" if literals else f"{ID} < 0")
    if not filters.include_recovered and "recovered" not in {s.lower() for s in filters.status}:
        clauses.append(f"status != {quote('recovered')}")
    return " and ".join(clauses) or None


def _connect(choice: StoreChoice) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise StoreUnavailableError(
            "this home keeps its vectors in Milvus, but pymilvus is not installed: "
            "pip install 'artefact-search[scale]' (pymilvus and milvus-lite)") from exc
    try:
        if choice.backend == "milvus-lite":
            Path(choice.location).parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(uri=choice.location)
        return MilvusClient(uri=choice.server_uri, db_name=choice.database)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException and its own connection errors
        hint = ("Milvus Lite opens a file in one process at a time: stop the other process using it "
                "(e.g. `artefact serve`), or use a Milvus server (milvus://HOST:PORT)"
                if choice.backend == "milvus-lite" else "is the server running and reachable?")
        raise StoreUnavailableError(f"cannot open the vector store {choice.spec}: {exc}. {hint}") from exc


class MilvusStore:
    """Inner-product search in one Milvus collection; ids are catalogue image ids.

    The ids present are read once when the store is opened and then kept in memory
    (ids(), ntotal and the library's reconciliation need them often); `index check`
    opens the store afresh, so it sees rows changed behind this process's back.
    """

    def __init__(self, choice: StoreChoice, collection: str, dim: int, fields: FieldSource | None = None,
                 client: Any = None) -> None:
        self.choice = choice
        self.collection = collection
        self.dim = dim
        self.fields = fields  # the library sets it: filter fields of the photos added
        self.fields_seq = 0  # the catalogue change number the scalar fields reflect
        self._client = client if client is not None else _connect(choice)
        self._ids = np.zeros(0, np.int64)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, choice: StoreChoice, model: dict[str, Any], fields: FieldSource | None = None,
             fresh: bool = False) -> "MilvusStore":
        """The model's collection, created when missing (or dropped and created afresh with `fresh`)."""
        store = cls(choice, collection_name(model), int(model["dim"]), fields)
        store._call("open the collection", store._ensure_collection, fresh)
        store._ids = store._read_ids()
        return store

    def _ensure_collection(self, fresh: bool) -> None:
        from pymilvus import DataType, MilvusClient

        c = self._client
        if self.read_only and not c.has_collection(self.collection):
            raise StoreUnavailableError(f"{self.choice.spec} holds no collection {self.collection} for this model yet: "
                                        "the writer host makes it with its first ingest")
        if fresh:
            self._writable("rebuild the collection")
        if fresh and c.has_collection(self.collection):
            c.drop_collection(self.collection)
        if c.has_collection(self.collection):
            self._check_schema()
            c.load_collection(self.collection)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description="artefact-search image vectors (ids = catalogue image ids)")
        schema.add_field(ID, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=self.dim)
        for name in FILTER_FIELDS:
            schema.add_field(name, DataType.VARCHAR, max_length=VARCHAR_MAX)
        c.create_collection(self.collection, schema=schema, consistency_level="Strong")
        params = c.prepare_index_params()
        params.add_index(field_name=VECTOR, index_type=self.choice.index_type or INDEX_TYPE, metric_type="IP")
        # sync=False: waiting asks the server for a timestamp that Milvus Lite does not serve (a logged
        # server error); loading the collection below waits for the index on a server anyway.
        c.create_index(self.collection, params, sync=False)
        c.load_collection(self.collection)
        log.info("created Milvus collection %s (%d-d) in %s", self.collection, self.dim, self.choice.spec)

    def _check_schema(self) -> None:
        described = self._client.describe_collection(self.collection)
        names = {f["name"]: f for f in described.get("fields", [])}
        dim = int((names.get(VECTOR) or {}).get("params", {}).get("dim", -1))
        missing = [n for n in (ID, VECTOR, *FILTER_FIELDS) if n not in names]
        if missing or dim != self.dim:
            raise StoreError(f"the Milvus collection {self.collection} in {self.choice.spec} is not one this program "
                             f"made (fields missing: {', '.join(missing) or 'none'}, dimension {dim}, want {self.dim})")

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one Milvus request; its failures become StoreUnavailableError naming the store."""
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - MilvusException, grpc errors: all mean the store failed us
            raise StoreUnavailableError(f"Milvus ({self.choice.spec}, collection {self.collection}) failed to "
                                        f"{what}: {exc}") from exc

    def _read_ids(self) -> np.ndarray:
        def read() -> np.ndarray:
            it = self._client.query_iterator(self.collection, batch_size=BATCH * 10, filter="", output_fields=[ID])
            parts = []
            try:
                while True:
                    rows = it.next()
                    if not rows:
                        break
                    parts.append(np.fromiter((int(r[ID]) for r in rows), dtype=np.int64, count=len(rows)))
            finally:
                it.close()
            return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

        return np.asarray(self._call("read the ids", read))

    def reload_ids(self) -> None:
        """Read the ids again (another process may have written the collection)."""
        self._ids = self._read_ids()

    # -- the VectorStore protocol ------------------------------------------------------
    @property
    def kind(self) -> str:
        return MILVUS

    @property
    def ntotal(self) -> int:
        return int(len(self._ids))

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    @property
    def read_only(self) -> bool:
        return self.choice.read_only

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise StoreError(
                f"cannot {what}: this home reads the Milvus collection {self.collection} read-only "
                f"({self.choice.spec}); the writer host that fills it ingests, removes and re-statuses records")

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Upsert rows (vector and the photos' current filter fields): adding an id again replaces it."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        self._writable("write vectors")
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        if xb.ndim != 2 or xb.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {xb.shape} do not fit an index of dimension {self.dim}")
        for start in range(0, len(ids), BATCH):
            part = ids[start:start + BATCH]
            fields = self._fields_of(part)
            rows = [{ID: int(i), VECTOR: xb[start + n].tolist(), **{f: fields[f][n] for f in FILTER_FIELDS}}
                    for n, i in enumerate(part)]
            self._call("write vectors", self._client.upsert, self.collection, rows)
        self._ids = np.union1d(self._ids, ids)

    def _fields_of(self, ids: np.ndarray) -> dict[str, list[str]]:
        if self.fields is None:
            return {f: [""] * len(ids) for f in FILTER_FIELDS}
        got = self.fields(ids)
        return {f: [v[: VARCHAR_MAX // 4] for v in got[f]] for f in FILTER_FIELDS}

    def remove(self, ids: np.ndarray) -> int:
        ids = np.intersect1d(np.asarray(ids, dtype=np.int64), self._ids)
        if len(ids):
            self._writable("delete vectors")
        for start in range(0, len(ids), BATCH):
            part = [int(i) for i in ids[start:start + BATCH]]
            self._call("delete vectors", self._client.delete, self.collection, ids=part)
        self._ids = np.setdiff1d(self._ids, ids, assume_unique=True)
        return int(len(ids))

    def rows(self, ids: np.ndarray, with_vectors: bool = True) -> Iterator[dict[str, Any]]:
        """The stored rows of these ids (those Milvus has), in batches."""
        fields = [ID, *FILTER_FIELDS] + ([VECTOR] if with_vectors else [])
        ids = np.asarray(ids, dtype=np.int64)
        for start in range(0, len(ids), BATCH):
            part = [int(i) for i in ids[start:start + BATCH]]
            yield from self._call("read vectors", self._client.get, self.collection, ids=part, output_fields=fields)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        found = {int(r[ID]): r[VECTOR] for r in self.rows(ids)}
        for row, i in enumerate(ids):
            if int(i) not in found:
                raise StoreError(f"image {int(i)} has no vector in the Milvus collection {self.collection}")
            out[row] = found[int(i)]
        return out

    def search(self, xq: np.ndarray, k: int, selection: IdSelection | None = None) -> list[Hits]:
        """k nearest per query among the selected ids, the filter pushed down to Milvus.

        The selection's filters become a filter expression; a selection made of ids alone
        goes down as an id list (or, when long, is applied to a wider top-k). Hits outside the
        selection (fields not yet brought up to date) are dropped here.
        """
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        empty = [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(xq))]
        if self.ntotal == 0 or len(xq) == 0 or (selection is not None and selection.count == 0):
            return empty
        expr: str | None = None
        limit = max(1, min(k, self.ntotal))
        if selection is not None:
            if selection.filters is not None:
                expr = filter_expression(selection.filters)
            elif selection.count <= ID_LIST_MAX:
                expr = f"{ID} in [{', '.join(str(int(i)) for i in selection.ids())}]"
            else:  # no filter to push down: take enough that k selected ones are among them
                limit = self.ntotal
        limit = min(limit, MAX_TOPK)
        results = self._call("search", self._client.search, self.collection, data=xq.tolist(), limit=limit,
                             filter=expr or "", anns_field=VECTOR, output_fields=[ID],
                             search_params={"metric_type": "IP"})
        out: list[Hits] = []
        for hits in results:
            I = np.fromiter((int(h["id"]) for h in hits), dtype=np.int64, count=len(hits))
            D = np.fromiter((float(h["distance"]) for h in hits), dtype=np.float32, count=len(hits))
            if selection is not None:
                keep = selection.contains(I)
                if not keep.all():
                    log.warning("Milvus returned %d hits whose filter fields lag the catalogue; dropped",
                                int((~keep).sum()))
                D, I = D[keep], I[keep]
            order = np.lexsort((I, -D))  # FAISS's order: best first, ties by id
            out.append((D[order][:k], I[order][:k]))
        return out

    def flush(self) -> None:
        """Seal what was written into searchable segments (Milvus Lite otherwise scans new rows one by
        one: 5,000 unsealed 1280-d rows cost ~10 s a search here, sealed ~0.3 s)."""
        if not self.read_only:
            self._call("flush", self._client.flush, self.collection)

    def save(self, path: Path, manifest: dict[str, Any]) -> None:
        """Milvus persists every write itself: the rows are flushed, then the manifest beside the catalogue is written."""
        self.flush()
        with files.save_lock(path):
            files.commit(path, {
                "format": FORMAT,
                "kind": MILVUS,
                "store": self.choice.spec,
                "collection": self.collection,
                "metric": "inner_product",
                "dim": self.dim,
                "count": self.ntotal,
                "fields_seq": self.fields_seq,
                **manifest,
            })

    def describe(self) -> dict[str, Any]:
        return {"kind": MILVUS, "exact": (self.choice.index_type or INDEX_TYPE) == "FLAT",
                "params": {"store": self.choice.spec, "collection": self.collection,
                           "index_type": self.choice.index_type or INDEX_TYPE},
                "memory_bytes": 0}  # held by Milvus, not this process

    def close(self) -> None:
        try:
            self._client.close()
        except Exception as exc:  # noqa: BLE001 - closing a client that lost its server
            log.debug("closing the Milvus client: %s", exc)

    # -- scalar fields -------------------------------------------------------------------
    def refresh_fields(self, ids: np.ndarray, vectors: Iterable[tuple[np.ndarray, np.ndarray]] | None = None) -> int:
        """Rewrite the filter fields of these photos (those held) from the field source.

        Milvus Lite has no partial update, so the whole row is upserted: its vector comes from
        `vectors` (the catalogue's (ids, matrix) chunks) when given, else from Milvus itself.
        Returns the rows rewritten.
        """
        ids = np.intersect1d(np.asarray(ids, dtype=np.int64), self._ids)
        if len(ids) == 0:
            return 0
        done = 0
        if vectors is None:
            for start in range(0, len(ids), BATCH):
                part = ids[start:start + BATCH]
                got = self.reconstruct(part)
                self.add(part, got)
                done += len(part)
            return done
        for chunk_ids, mat in vectors:
            keep = np.isin(chunk_ids, ids)
            self.add(chunk_ids[keep], mat[keep])
            done += int(keep.sum())
        return done

    def stale_fields(self, expected: FieldSource, ids: np.ndarray | None = None) -> np.ndarray:
        """Ids whose stored filter fields differ from `expected` (what the catalogue says)."""
        ids = self._ids if ids is None else np.intersect1d(np.asarray(ids, dtype=np.int64), self._ids)
        stale: list[int] = []
        for start in range(0, len(ids), BATCH):
            part = ids[start:start + BATCH]
            want = expected(part)
            have = {int(r[ID]): r for r in self.rows(part, with_vectors=False)}
            for n, i in enumerate(part):
                row = have.get(int(i))
                if row is None or any(row.get(f) != want[f][n][: VARCHAR_MAX // 4] for f in FILTER_FIELDS):
                    stale.append(int(i))
        return np.asarray(stale, dtype=np.int64)


def from_manifest(manifest: dict[str, Any] | None, store: MilvusStore) -> tuple[int, bool]:
    """The catalogue generation and fields change number a manifest records for `store`.

    A manifest of another kind or another collection (the FAISS file of a home before,
    a catalogue version from a bundle) says nothing about this collection: (-1, False).
    """
    if not manifest or manifest.get("kind") != MILVUS or manifest.get("collection") != store.collection:
        return -1, False
    store.fields_seq = int(manifest.get("fields_seq", 0))
    return int(manifest.get("generation", -1)), True


