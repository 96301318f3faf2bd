#!/usr/bin/env python
"""Search latency and recall@10 of Milvus Lite vs FAISS (exact flat, and the compressed default) at n vectors.

Synthetic catalogue: n unit vectors in clusters (objects photographed several times look
alike), seeded; queries are fresh noisy views of catalogued vectors (a new photo of a known
object). Ground truth is the exact top-10 by inner product (numpy). Each store is reached
through the code the library uses (FlatStore, IvfPqStore tuned as `optimize` tunes it,
MilvusStore over a Milvus Lite file), one query at a time, without and with the filter every
default search carries (recovered objects left out, pushed down to Milvus as an expression).

  .venv/bin/python benchmarks/scale_out_search.py              # 100k x 1280-d, 200 queries
  .venv/bin/python benchmarks/scale_out_search.py -n 20000 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artefact.index.catalogue import SearchFilters
from artefact.index.records import FILTER_FIELDS
from artefact.index.stores.base import IVF_PQ, IdSelection, VectorStore
from artefact.index.stores.choice import MILVUS_LITE, StoreChoice
from artefact.index.stores.flat import FlatStore
from artefact.index.stores.ivfpq import IvfPqStore
from artefact.index.stores.milvus import MilvusStore
from artefact.index.stores.optimize import FLAT_MAX, TARGET_RECALL, default_params, tune

RECOVERED_SHARE = 0.07  # as in real catalogues (benchmarks/scale_data.py)


def clustered_unit_vectors(n: int, dim: int, seed: int = 0, per_cluster: int = 4,
                           spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors, about `per_cluster` around each random centre; returns (vectors, cluster of each)."""
    rng = np.random.default_rng(seed)
    clusters = max(1, n // per_cluster)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    label = rng.integers(0, clusters, n)
    xb = np.empty((n, dim), np.float32)
    for start in range(0, n, 20_000):  # bounded temporaries at large n
        part = label[start:start + 20_000]
        noise = rng.standard_normal((len(part), dim)).astype(np.float32) * (spread / np.sqrt(dim))
        x = centres[part] + noise
        xb[start:start + len(part)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return xb, label


def noisy_views(xb: np.ndarray, queries: int, seed: int, noise: float = 0.25) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    picked = xb[rng.choice(len(xb), queries, replace=False)]
    x = picked + rng.standard_normal(picked.shape).astype(np.float32) * (noise / np.sqrt(xb.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top(xb: np.ndarray, xq: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[np.ndarray]:
    S = xq @ xb.T
    if allowed is not None:
        S[:, ~allowed] = -np.inf
    top = np.argpartition(-S, k, axis=1)[:, :k]
    return [t[np.argsort(-S[r, t])] for r, t in enumerate(top)]


def measure(store: VectorStore, xq: np.ndarray, truth: list[np.ndarray], k: int,
            selection: IdSelection | None = None) -> dict[str, float]:
    """p50/p95 latency of one-query searches and recall@k against the exact top-k."""
    store.search(xq[:1], k, selection)  # warm
    times, found = [], 0
    for q, t in zip(xq, truth):
        t0 = time.perf_counter()
        (_, ids), = store.search(q[None], k, selection)
        times.append((time.perf_counter() - t0) * 1e3)
        found += len(np.intersect1d(ids[:k], t))
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2),
            "recall_at_10": round(found / (k * len(truth)), 4)}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 1)


STORES = ("flat", "compressed", "milvus")


def measure_vector_stores(n: int = 100_000, dim: int = 1280, queries: int = 200, k: int = 10, seed: int = 0,
                          workdir: Path | None = None, log: Callable[[str], None] | None = None,
                          stores: tuple[str, ...] = STORES) -> dict[str, Any]:
    """Latency (p50/p95 ms, one query at a time) and recall@k of each store over the same n vectors.

    Args:
        workdir: where the Milvus Lite file goes (a temporary folder, removed after, when None).
        log: progress lines (stderr in the command).
        stores: which of flat, compressed (IVF-PQ, only above the flat threshold) and milvus to measure.

    Returns:
        {"n", "dim", "queries", "k", "rows": [{"store", "build_s", "unfiltered": {...}, "filtered": {...}}], ...}
    """
    say = log or (lambda _: None)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="scale-out-search-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        say(f"data: {n} x {dim} clustered unit vectors, {queries} queries")
        xb, _ = clustered_unit_vectors(n, dim, seed)
        xq = noisy_views(xb, queries, seed)
        ids = np.arange(n, dtype=np.int64)
        recovered = np.random.default_rng(seed + 2).random(n) < RECOVERED_SHARE
        selection = IdSelection.from_mask(~recovered, SearchFilters())  # what every default search carries
        truth = exact_top(xb, xq, k)
        truth_filtered = exact_top(xb, xq, k, allowed=~recovered)
        rows: list[dict[str, Any]] = []

        def run(name: str, build: Callable[[], VectorStore]) -> VectorStore:
            say(f"{name}: building")
            store, build_s = _timed(build)
            say(f"{name}: searching")
            rows.append({"store": name, "build_s": build_s, "unfiltered": measure(store, xq, truth, k),
                         "filtered": measure(store, xq, truth_filtered, k, selection)})
            say(f"{name}: {rows[-1]}")
            return store

        def flat() -> VectorStore:
            store = FlatStore(dim)
            store.add(ids, xb)
            return store

        if "flat" in stores:
            run("faiss flat (exact)", flat)
        if n > FLAT_MAX and "compressed" in stores:
            def compressed() -> VectorStore:
                params = default_params(IVF_PQ, n, dim)
                sample = xb[np.random.default_rng(seed + 3).choice(n, min(n, 40 * params["nlist"]), replace=False)]
                store = IvfPqStore.train(dim, sample, params)
                for start in range(0, n, 20_000):
                    store.add(ids[start:start + 20_000], xb[start:start + 20_000])
                tune(store, TARGET_RECALL)
                return store

            run(f"faiss {IVF_PQ} (default above {FLAT_MAX}, tuned to {TARGET_RECALL})", compressed)

        def milvus() -> VectorStore:
            status = np.where(recovered, "recovered", "stolen")

            def fields(batch: np.ndarray) -> dict[str, list[str]]:
                return {f: (status[batch].tolist() if f == "status" else [""] * len(batch)) for f in FILTER_FIELDS}

            choice = StoreChoice(MILVUS_LITE, str(work / "milvus.db"), spec="milvus-lite:milvus.db")
            model = {"backend": "synthetic", "model_name": "clustered", "weights_sha256": f"seed{seed}", "dim": dim}
            store = MilvusStore.open(choice, model, fields, fresh=True)
            for start in range(0, n, 10_000):
                store.add(ids[start:start + 10_000], xb[start:start + 10_000])
            store.flush()  # as Library.save does
            return store

        if "milvus" in stores:
            store = run("milvus lite (FLAT)", milvus)
            if isinstance(store, MilvusStore):
                store.close()
        return {"n": n, "dim": dim, "queries": queries, "k": k, "seed": seed, "rows": rows,
                "filtered_means": f"recovered objects ({RECOVERED_SHARE:.0%}) left out, as every default search"}
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def table(result: dict[str, Any]) -> str:
    lines = [f"Search at {result['n']} x {result['dim']}-d, {result['queries']} queries one at a time, k={result['k']}",
             f"{'store':<52} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} {'R@10':>6} | filtered: "
             f"{'p50 ms':>7} {'p95 ms':>7} {'R@10':>6}"]
    for r in result["rows"]:
        u, f = r["unfiltered"], r["filtered"]
        lines.append(f"{r['store']:<52} {r['build_s']:>8} {u['p50_ms']:>8} {u['p95_ms']:>8} {u['recall_at_10']:>6} | "
                     f"{'':>9} {f['p50_ms']:>7} {f['p95_ms']:>7} {f['recall_at_10']:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=100_000, help="vectors (default 100000)")
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stores", default=",".join(STORES), help=f"comma-separated subset of {', '.join(STORES)}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = measure_vector_stores(args.n, args.dim, args.queries, args.k, args.seed,
                                   log=lambda line: print(line, file=sys.stderr, flush=True),
                                   stores=tuple(s.strip() for s in args.stores.split(",")))
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
