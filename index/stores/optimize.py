"""Choose, build and tune a library's vector store: flat up to a measured size, compressed beyond it.

`build_store` makes a new store from the catalogue's vectors without touching the one
in use: the compressed kinds are trained on a sample, filled chunk by chunk with
checkpoints in a build folder (a killed build resumes there), then tuned so that
recall@10 against exact search, measured on held-out catalogue vectors, reaches the
target at the lowest search cost. The caller saves the result, which swaps the
manifest atomically; until then the old store keeps answering.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import faiss
import numpy as np

from artefact.embed.fileio import atomic_path, atomic_write_text
from artefact.index.stores import files
from artefact.index.stores.approximate import ApproximateStore
from artefact.index.stores.base import FLAT, HNSW, IVF_PQ, KINDS, IdSelection, StoreError, VectorStore
from artefact.index.stores.flat import FlatStore
from artefact.index.stores.full_vectors import MAX_SEGMENTS, FullVectors
from artefact.index.stores.hnsw import HnswStore
from artefact.index.stores.ivfpq import IvfPqStore, default_pq_m

log = logging.getLogger(__name__)

# Exact flat search up to this many vectors. Measured (benchmarks/bench_scale.py, 1280-d, CPU
# time per query on this 2-core machine; see benchmarks/README.md, "Scale"): flat 12.8 ms with the
# default filter (21.6 unfiltered) at 10k photos, 173-602 ms at 1M; IVF-PQ 8.6 ms at 10k, 20-28 ms at
# 1M, recall@10 0.975-0.98. Flat stays exact while it is inside the 20 ms search target; past ~10k
# it is not, and the compressed index costs less at every size measured.
FLAT_MAX = 10_000
TARGET_RECALL = 0.98
RECALL_K = 10
CHECKPOINT_EVERY = 100_000  # vectors between build checkpoints
NPROBES = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# Candidates re-ranked by the scalar codes, then re-scored exactly from the full vectors. At least
# 800: on the project's recall benchmark among 100k synthetic photos (bench_scale.py --recall-bench)
# real query photos, further from their match than held-out catalogue vectors, lost recall@1 with
# the 200 that tuning on those picked (0.5417 vs flat 0.5737); 800 gives 0.5705, 1600 equals flat.
SHORTLISTS = (800, 1600, 3200)
FILTER_WIDEN = (0.25, 0.5, 0.75, 1.0)  # scan width x (catalogue / selected) ** this, for filtered searches
EF_SEARCHES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)


class VectorSource(Protocol):
    """Where a build reads vectors from (the catalogue)."""

    def image_ids(self) -> np.ndarray: ...

    def vectors(self, image_ids: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


@dataclass
class StoreOptions:
    """How a library chooses and tunes its store; api.settings.Settings fills it from ARTEFACT_*."""

    flat_max: int = FLAT_MAX  # up to this many vectors: exact flat search
    compressed: str = IVF_PQ  # the kind used beyond flat_max
    target_recall: float = TARGET_RECALL
    full_dtype: str = "float32"  # full vectors on disk for re-scoring (float16 halves the file)
    train_max: int = 131_072  # training sample cap (k-means cost grows with it)
    holdout: int = 300  # held-out catalogue vectors used as queries when tuning
    grow_factor: float = 2.0  # optimize is due once the catalogue is this many times the size trained on
    drift: float = 0.03  # ... or when new vectors fit the coarse cells this much worse than the training set
    dead_fraction: float = 0.25  # ... or when this share of stored rows belongs to removed photos
    auto: bool = True  # switch kinds by size on their own (after an ingest)


def chosen_kind(n: int, options: StoreOptions, pinned: str | None = None) -> str:
    """The kind a library of n vectors should use: the pinned one, else flat up to flat_max."""
    if pinned:
        return pinned
    return FLAT if n <= options.flat_max else options.compressed


def due_reasons(store: VectorStore, n: int, options: StoreOptions, pinned: str | None = None) -> list[str]:
    """Why `optimize` should run now (empty: it need not)."""
    want = chosen_kind(n, options, pinned)
    reasons = []
    if store.kind != want:
        why = "pinned" if pinned else (f"more than {options.flat_max}" if want != FLAT else f"at most {options.flat_max}")
        reasons.append(f"{n} vectors: the store should be {want} ({why}), it is {store.kind}")
    if isinstance(store, ApproximateStore):
        b = store.build
        if b.ntotal_at_build and n > options.grow_factor * b.ntotal_at_build:
            reasons.append(f"grown from {b.ntotal_at_build} to {n} vectors since it was trained")
        if b.added_since >= max(1000, 0.1 * max(b.ntotal_at_build, 1)) and b.fit_at_build:
            fit = b.added_fit_sum / b.added_since
            if fit < b.fit_at_build - options.drift:
                reasons.append(f"drift: new vectors fit the trained cells at {fit:.3f}, the training set at {b.fit_at_build:.3f}")
        rows = store.full.rows
        if rows and 1 - store.full.count / rows > options.dead_fraction:
            reasons.append(f"{rows - store.full.count} of {rows} stored rows belong to removed photos")
    return reasons


def default_params(kind: str, n: int, dim: int) -> dict[str, Any]:
    if kind == IVF_PQ:
        # About 2 sqrt(n) cells (a power of two): at 1M, 2048 cells of ~500 photos; more cells would
        # make each probe cheaper but k-means training slower than this machine allows.
        nlist = int(max(16, 2 ** round(math.log2(max(1.0, 2 * math.sqrt(n))))))
        return {"nlist": nlist, "pq_m": default_pq_m(dim), "pq_bits": 4, "opq": False, "nprobe": 16, "shortlist": 400}
    if kind == HNSW:
        return {"m": 32, "sq": "SQ4", "ef_construction": 40, "ef_search": 64, "shortlist": 400}
    return {}


# -- building ----------------------------------------------------------------------------
@dataclass
class BuildState:
    """Progress of a compressed build, saved in the build folder after every step."""

    kind: str
    dim: int
    params: dict[str, Any]
    dtype: str
    stage: str = "new"  # new -> trained -> filled
    last_id: int = -1  # vectors with ids up to this one are in the checkpoint
    index_file: str = ""
    full: dict[str, Any] | None = None
    rerank: dict[str, Any] | None = None
    sq_file: str = ""
    trained_on: int = 0
    fit_at_build: float = 0.0

    def save(self, folder: Path) -> None:
        atomic_write_text(folder / "state.json", json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> "BuildState | None":
        try:
            return cls(**json.loads((folder / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def build_store(
    source: VectorSource,
    index_path: Path,
    dim: int,
    kind: str,
    options: StoreOptions,
    params: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> VectorStore:
    """A new store of `kind` holding every vector of `source`, tuned; not yet saved.

    Raises:
        StoreError: an unknown kind.
    """
    if kind not in KINDS:
        raise StoreError(f"unknown index type {kind!r}: use one of {', '.join(KINDS)}")
    note = progress or (lambda stage, done, total: None)
    all_ids = np.sort(source.image_ids())
    if kind == FLAT:
        store = FlatStore(dim)
        done = 0
        for ids, xb in source.vectors(None):
            store.add(ids, xb)
            done += len(ids)
            note("adding", done, len(all_ids))
        return store
    folder = files.build_folder(index_path)
    folder.mkdir(parents=True, exist_ok=True)
    want = {**default_params(kind, len(all_ids), dim), **(params or {})}
    state = BuildState.load(folder)
    if state is None or (state.kind, state.dim, state.params, state.dtype) != (kind, dim, want, options.full_dtype):
        shutil.rmtree(folder)  # a different build was interrupted here: start afresh
        folder.mkdir(parents=True)
        state = BuildState(kind, dim, want, options.full_dtype)
    else:
        log.info("resuming the %s build in %s at stage %s (ids up to %d done)", kind, folder, state.stage, state.last_id)
    cls: type[ApproximateStore] = IvfPqStore if kind == IVF_PQ else HnswStore
    store = _train_or_resume(source, folder, state, cls, all_ids, options, note)
    remaining = all_ids[all_ids > state.last_id]
    # Each checkpoint writes one full-vector segment: few enough that saving never merges them
    # (a merge rewrites gigabytes at a million photos).
    step = max(CHECKPOINT_EVERY, math.ceil(len(all_ids) / (MAX_SEGMENTS - 1)))
    for start in range(0, len(remaining), step):
        part = remaining[start : start + step]
        _fill(store, folder, source, part, note, len(all_ids))
        state.last_id = int(part[-1])
        state.index_file = f"index-{state.last_id}.faiss"
        with atomic_path(folder / state.index_file) as tmp:
            faiss.write_index(store.index, tmp)
        state.full = store.full.save(folder, "seg")
        if store.rerank is not None:
            state.rerank = store.rerank.save(folder, "sq")
        state.stage = "filling"
        state.save(folder)
        for old in folder.glob("index-*.faiss"):
            if old.name != state.index_file:
                old.unlink()
    state.stage = "filled"
    state.save(folder)
    store.build.ntotal_at_build = store.ntotal
    store.build.added_since = 0
    store.build.added_fit_sum = 0.0
    return store


def _train_or_resume(source: VectorSource, folder: Path, state: BuildState, cls: type[ApproximateStore],
                     all_ids: np.ndarray, options: StoreOptions, note: Callable[[str, int, int], None]) -> ApproximateStore:
    if state.stage in ("filling", "filled") and state.full is not None:
        index = faiss.read_index(str(folder / state.index_file))
        full = FullVectors.load(folder, state.full, state.dim)
        sq = faiss.read_index(str(folder / state.sq_file)) if state.sq_file else None
        rerank = FullVectors.load(folder, state.rerank, sq.sa_code_size()) if sq is not None and state.rerank else None
        store = cls(state.dim, index, full, state.params, sq=sq, rerank=rerank)
        store.build.trained_on, store.build.fit_at_build = state.trained_on, state.fit_at_build
        return store
    rng = np.random.default_rng(0)
    n_train = min(len(all_ids), options.train_max, _train_size(state.kind, state.params, len(all_ids)))
    pick = np.sort(rng.choice(all_ids, size=n_train, replace=False)) if n_train < len(all_ids) else all_ids
    note("reading training sample", 0, n_train)
    sample = np.concatenate([xb for _, xb in source.vectors(pick.tolist())]) if n_train else np.zeros((0, state.dim), np.float32)
    note("training", 0, n_train)
    t0 = time.perf_counter()
    trained = cls.train(state.dim, sample, state.params, state.dtype)  # type: ignore[attr-defined]
    log.info("trained %s on %d vectors in %.1f s", state.kind, len(sample), time.perf_counter() - t0)
    state.trained_on, state.fit_at_build = trained.build.trained_on, trained.build.fit_at_build
    if trained.sq is not None:
        state.sq_file = "sq.faiss"
        with atomic_path(folder / state.sq_file) as tmp:
            faiss.write_index(trained.sq, tmp)
    state.stage = "trained"
    state.save(folder)
    return trained


def _train_size(kind: str, params: dict[str, Any], n: int) -> int:
    if kind == IVF_PQ:
        # FAISS's k-means wants 39-256 points per cell; 40 keeps the training of 2048 cells (a million
        # photos) at ~4e12 flops, minutes on this machine, and tuning's nprobe absorbs coarser cells.
        return max(10_000, 40 * int(params["nlist"]))
    return 20_000  # the scalar quantiser's value ranges


def _fill(store: ApproximateStore, folder: Path, source: VectorSource, ids: np.ndarray,
          note: Callable[[str, int, int], None], total: int) -> None:
    """Add the vectors of `ids` to the index and stream them into one new full-vector segment."""
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for got, xb in source.vectors(ids.tolist()):
            xb = np.ascontiguousarray(xb, dtype=np.float32)
            store._index_add(got, xb)
            if store.rerank is not None:
                store.rerank.add(got, store.sq.sa_encode(xb))
            yield got, xb
            note("adding", store.index.ntotal, total)

    store.full.write_segment(folder, "seg", chunks())


def adopt_build_files(store: VectorStore, index_path: Path) -> None:
    """Move the build folder's full-vector segments beside the store's manifest (same filesystem: renames)."""
    if not isinstance(store, ApproximateStore):
        return
    folder = files.build_folder(index_path)
    prefix = files.file_prefix(index_path)
    for table in (store.full, store.rerank):
        if table is None:
            continue
        renamed = {}
        for name in table.files():
            src = folder / name
            if src.exists():
                renamed[name] = f"{prefix}-{name}"
                src.rename(index_path.parent / renamed[name])
        table.rename_segments(renamed)


def discard_build(index_path: Path) -> None:
    shutil.rmtree(files.build_folder(index_path), ignore_errors=True)


# -- tuning ------------------------------------------------------------------------------
@dataclass
class Measured:
    params: dict[str, Any]
    recall: float
    ms: float


def holdout_ids(ids: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=min(n, len(ids)), replace=False))


def exact_neighbours(store: VectorStore, xq: np.ndarray, qids: np.ndarray, k: int,
                     selection: IdSelection | None = None) -> list[np.ndarray]:
    """Exact top-k ids of each query among the store's (selected) vectors, the query's own id left out."""
    ids = store.ids() if selection is None else np.intersect1d(store.ids(), selection.ids())
    if isinstance(store, ApproximateStore):
        hits = store._exact(xq, k + 1, ids)
    else:
        hits = store.search(xq, k + 1, selection)
    return [i[i != q][:k] for (_, i), q in zip(hits, qids)]


def recall_of(store: VectorStore, xq: np.ndarray, qids: np.ndarray, truth: list[np.ndarray], k: int = RECALL_K,
              selection: IdSelection | None = None) -> float:
    """Mean share of the exact top-k that the store's top-k holds (self-matches excluded)."""
    hits = store.search(xq, k + 1, selection)
    found = 0
    total = 0
    for (_, i), q, t in zip(hits, qids, truth):
        mine = i[i != q][:k]
        found += len(np.intersect1d(mine, t))
        total += len(t)
    return found / total if total else 1.0


def _time_ms(store: VectorStore, xq: np.ndarray, k: int, n: int = 30,
             selection: IdSelection | None = None) -> float:
    times = []
    for q in xq[:n]:
        t0 = time.perf_counter()
        store.search(q[None, :], k, selection)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)) if times else 0.0


def tune(store: VectorStore, target: float, holdout: int = 300, k: int = RECALL_K) -> dict[str, Any]:
    """Set the search parameters that reach `target` recall@k at the lowest measured latency.

    The scan width (nprobe or efSearch) and the shortlist re-scored exactly are searched on
    a grid, each shortlist with the smallest scan width that reaches the target; of those,
    the fastest wins. Then the widening of the scan for filtered searches is chosen the
    same way on a random tenth of the catalogue.

    Returns:
        What was measured: chosen parameters, recall, filtered recall, every point tried.
    """
    if not isinstance(store, ApproximateStore) or store.ntotal <= k + 1:
        return {"recall_at_10": 1.0, "target_recall": target, "exact": True}
    qids = holdout_ids(store.ids(), holdout)
    xq = store.reconstruct(qids)
    truth = exact_neighbours(store, xq, qids, k)
    if isinstance(store, IvfPqStore):
        knob, values = "nprobe", sorted({v for v in NPROBES if v < store.nlist} | {store.nlist})
    else:
        knob, values = "ef_search", list(EF_SEARCHES)
    tried: list[Measured] = []
    for shortlist in SHORTLISTS:
        if tried and shortlist > 2 * store.ntotal:  # wider shortlists only re-score the same rows (a small store
            break  # still gets the first one measured: nothing tried left `optimize` without parameters)
        for v in values:  # recall grows with the scan: stop at the first width that reaches the target
            store.params.update({knob: v, "shortlist": shortlist})
            r = recall_of(store, xq, qids, truth, k)
            tried.append(Measured({knob: v, "shortlist": shortlist}, r, 0.0))
            if r >= target:
                break
    good = [m for m in tried if m.recall >= target]
    if good:
        for m in good:
            store.params.update(m.params)
            m.ms = _time_ms(store, xq, k)
        best = min(good, key=lambda m: m.ms)
    else:
        best = max(tried, key=lambda m: (m.recall, -m.params["shortlist"]))
        log.warning("recall target %.3f not reached; best measured %.4f with %s", target, best.recall, best.params)
    store.params.update(best.params)
    # Filtered searches: a random tenth of the catalogue, exact answers among those ids as truth.
    rng = np.random.default_rng(2)
    ids = store.ids()
    selection = IdSelection.from_ids(np.sort(rng.choice(ids, size=max(k + 1, len(ids) // 10), replace=False)))
    ftruth = exact_neighbours(store, xq, qids, k, selection)
    filtered = 0.0
    for widen in FILTER_WIDEN:
        store.params["filter_widen"] = widen
        filtered = recall_of(store, xq, qids, ftruth, k, selection)
        if filtered >= target:
            break
    b = store.build
    b.recall_at_10, b.target_recall, b.recall_queries, b.filtered_recall_at_10 = (
        round(best.recall, 4), target, len(qids), round(filtered, 4))
    return {"params": {**best.params, "filter_widen": store.params["filter_widen"]},
            "recall_at_10": round(best.recall, 4), "filtered_recall_at_10": round(filtered, 4),
            "target_recall": target, "queries": len(qids), "search_ms": round(best.ms, 2),
            "tried": [asdict(m) for m in tried]}
