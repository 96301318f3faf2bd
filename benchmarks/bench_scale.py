"""Scale benchmark: libraries of 100k-1M synthetic photos, each vector store kind built, opened and searched.

    .venv/bin/python benchmarks/bench_scale.py                       # 100k photos, flat and ivf-pq
    .venv/bin/python benchmarks/bench_scale.py --sizes 1000000 --json
    .venv/bin/python benchmarks/bench_scale.py --sizes 100000 --types ivf-pq,hnsw,flat --recall-bench

Vectors have the offline backbone's dimension (1280) and are clustered like its real
embeddings (see scale_data.py); objects have 1-6 photos and skewed status / type /
country / source fields. Per size the catalogue (SQLite, as ingest writes it) is built
once and cached in --workdir; per store kind `Library.optimize(kind)` builds and tunes the
store, then a fresh process opens the library and searches it, so that open time and
resident memory are those of a new process. Printed per kind:

  build_s, disk_mb         optimize (train, fill, tune) time; store files on disk
  open_s, rss_mb           Library(home) + store + filter codes loaded; VmRSS after the searches
  rss_open_mb, rss_anon_mb VmRSS right after opening; anonymous (non-file) part after the searches
  search_p50_ms/p95_ms     one query photo, k=10 objects, `search_vectors` (filter: country = the
                           commonest + recovered left out, about 20% of photos)
  nofilter_p50_ms, default_p50_ms, narrow_p50_ms
                           no filter at all; the default filter (recovered left out); a narrow one
                           (a rarer country and type, about 0.3%)
  *_cpu_p50_ms             CPU time of the searching thread (wall time above includes waiting for
                           the cores when other processes use them)
  recall_at_10             image-level top 10 vs exact search (held-out perturbed catalogue photos)
  filtered_recall_at_10    the same among the country filter's photos

With --features N the local-feature store's read time for re-ranking (20 candidates, and
20 x 3 photos) is measured on a store of N photos of real-size records, cold and warm.
--types flat-mem times flat search in memory over a compressed store's full vectors, for
sizes where building and saving a flat store takes too long. Every stage is cached or
resumable in --workdir (catalogue chunks, exact answers, the store build's checkpoints).

With --recall-bench the project's recall benchmark (bench-build on data/sample, embedded
by EfficientNet-Lite0) is indexed with --recall-distractors synthetic photos around it,
and recall@1 of embedding search is reported for flat vs the compressed kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_data as sd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
K = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mib() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        for key in ("VmRSS", "RssAnon", "RssFile"):
            if line.startswith(key + ":"):
                out[key] = int(line.split()[1]) / 1024
    return out


# -- building a catalogue -----------------------------------------------------------------
def build_catalogue(home: Path, shape: sd.Shape, n_photos: int, seed: int = 0) -> dict[str, Any]:
    """The rows ingest would write for n_photos synthetic photos (bulk SQL, one transaction per chunk)."""
    from artefact.embed.models import ModelDescription
    from artefact.index.catalogue import Catalogue
    from artefact.index.home import Home
    from artefact.index.records import RECORD_FIELDS

    done = home / "built.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    home.mkdir(parents=True, exist_ok=True)
    cat = Catalogue(Home(home).catalogue)
    model = ModelDescription("efficientnet_lite0", "tf_efficientnet_lite0", "imagenet", shape.dim, {"size": 224},
                             "synthetic-bench", False)
    fields = sd.object_fields(n_photos, seed)
    t0 = time.perf_counter()
    cols = ", ".join(RECORD_FIELDS)
    marks = ", ".join("?" * len(RECORD_FIELDS))
    # One transaction per chunk: a killed build resumes after the last chunk it committed.
    objects = int(cat.db.execute("SELECT count(*) FROM objects").fetchone()[0])
    if objects:
        log(f"catalogue: resuming after {objects} objects")
    with cat.transaction():
        cat.set_model(model.to_dict())
    shown = time.perf_counter()
    for chunk in sd.synthetic_photos(shape, n_photos, seed=seed, skip_objects=objects):
        with cat.transaction():
            obj_rows = []
            for o in range(chunk.first_object, chunk.first_object + chunk.n_objects):
                values = {f: "" for f in RECORD_FIELDS}
                values.update({f: str(fields[f][o]) for f in fields})
                values["title"] = f"synthetic object {o}"
                obj_rows.append((f"SYN-{o:07d}", *[values[f] for f in RECORD_FIELDS], "{}", "2026-01-01", "2026-01-01"))
            cat.db.executemany(f"INSERT INTO objects (object_id, {cols}, extra, created_at, updated_at) "
                               f"VALUES (?, {marks}, ?, ?, ?)", obj_rows)
            first_pk = cat.db.execute("SELECT pk FROM objects WHERE object_id = ?", (obj_rows[0][0],)).fetchone()[0]
            img_rows = [(first_pk + int(o - chunk.first_object), f"/syn/{o}/{n}.jpg", f"{o:08x}{n:056x}", 1, 0, 1600, 1200,
                         v.tobytes(), "2026-01-01")
                        for n, (o, v) in enumerate(zip(chunk.object_index, chunk.vectors))]
            cat.db.executemany("INSERT INTO images (object_pk, path, sha256, size_bytes, mtime_ns, width, height, vector, "
                               "added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", img_rows)
            cat.bump_generation()
        objects += chunk.n_objects
        if time.perf_counter() - shown > 60:
            shown = time.perf_counter()
            log(f"catalogue: {objects} objects, photos up to {chunk.first_object + chunk.n_objects}")
    info = {"photos": n_photos, "objects": objects, "catalogue_s": round(time.perf_counter() - t0, 1),
            "catalogue_mb": round(Home(home).catalogue.stat().st_size / 1e6, 1)}
    cat.close()
    done.write_text(json.dumps(info))
    return info


def make_queries(home: Path, shape: sd.Shape, n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """New photos of catalogued objects: a catalogue photo moved by a real within-object difference."""
    from artefact.index.catalogue import Catalogue
    from artefact.index.home import Home

    cat = Catalogue(Home(home).catalogue)
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(cat.image_ids(), size=n, replace=False))
    x = np.concatenate([m for _, m in cat.vectors(ids.tolist())])
    cat.close()
    r = shape.residuals
    delta = (r[rng.integers(0, len(r), n)] - r[rng.integers(0, len(r), n)]) / np.sqrt(2)
    q = np.maximum(x + 0.5 * delta, 0)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32), ids


def exact_truth(home: Path, xq: np.ndarray, filters: list[Any]) -> list[np.ndarray]:
    """Exact top-K image ids per query, for each filter, streaming every catalogue vector once."""
    from artefact.index.catalogue import Catalogue
    from artefact.index.home import Home

    cat = Catalogue(Home(home).catalogue)
    allowed = [None if f is None else np.sort(cat.image_ids(f)) for f in filters]
    best = [(np.full((len(xq), 0), -np.inf, np.float32), np.zeros((len(xq), 0), np.int64)) for _ in filters]
    for ids, mat in cat.vectors(chunk=20000):
        S = xq @ mat.T
        for n, a in enumerate(allowed):
            keep = np.ones(len(ids), bool) if a is None else np.isin(ids, a)
            s = np.hstack([best[n][0], S[:, keep]])
            i = np.hstack([best[n][1], np.broadcast_to(ids[keep], (len(xq), int(keep.sum())))])
            if s.shape[1] > K:  # partition first: sorting 20k columns per chunk dominated at 1M
                part = np.argpartition(-s, K - 1, axis=1)[:, :K]
                s, i = np.take_along_axis(s, part, 1), np.take_along_axis(i, part, 1)
            top = np.argsort(-s, axis=1, kind="stable")[:, :K]
            best[n] = (np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1))
    cat.close()
    return [b[1] for b in best]


# -- measuring in a fresh process ---------------------------------------------------------
def bench_filters(home: Path) -> dict[str, Any]:
    """The filters searched: chosen from the catalogue's own field counts."""
    from artefact.index.catalogue import Catalogue, SearchFilters
    from artefact.index.home import Home

    cat = Catalogue(Home(home).catalogue)
    countries = [r[0] for r in cat.db.execute("SELECT country, count(*) c FROM objects GROUP BY country ORDER BY c DESC")]
    types = [r[0] for r in cat.db.execute("SELECT object_type, count(*) c FROM objects GROUP BY object_type ORDER BY c DESC")]
    cat.close()
    return {
        "nofilter": SearchFilters(include_recovered=True),
        "default": SearchFilters(),
        "country": SearchFilters(country=(countries[0],)),
        "narrow": SearchFilters(country=(countries[min(5, len(countries) - 1)],), object_type=(types[min(3, len(types) - 1)],)),
    }


def measure(home: Path, queries: Path, n_timed: int) -> dict[str, Any]:
    """Run in a new process: open, search with each filter, recall against the exact answers."""
    from artefact.index.library import Library

    data = np.load(queries)
    xq, truth, truth_country = data["xq"], data["truth"], data["truth_country"]
    filters = bench_filters(home)
    before = rss_mib()
    t0 = time.perf_counter()
    lib = Library(home)
    store = lib.vectors
    lib.selection(filters["default"])  # filter codes loaded (and brought up to date)
    open_s = time.perf_counter() - t0
    rss_open = rss_mib()
    out: dict[str, Any] = {"kind": store.kind, "vectors": store.ntotal, "open_s": round(open_s, 3),
                           "rss_open_mb": round(rss_open["VmRSS"], 1),
                           "rss_before_open_mb": round(before["VmRSS"], 1)}
    for name, f in filters.items():
        sel = lib.selection(f)
        out[f"{name}_selected"] = store.ntotal if sel is None else sel.count
    out.update(time_searches(lib, xq[:n_timed], filters))
    hits = store.search(xq, K)
    out["recall_at_10"] = round(float(np.mean([len(np.intersect1d(i, t)) / K for (_, i), t in zip(hits, truth)])), 4)
    sel = lib.selection(filters["country"])
    hits = store.search(xq, K, sel)
    out["filtered_recall_at_10"] = round(float(np.mean([len(np.intersect1d(i, t)) / K
                                                         for (_, i), t in zip(hits, truth_country)])), 4)
    after = rss_mib()
    out.update({"rss_mb": round(after["VmRSS"], 1), "rss_anon_mb": round(after.get("RssAnon", 0), 1),
                "rss_file_mb": round(after.get("RssFile", 0), 1), "params": store.describe().get("params")})
    lib.close()
    return out


def time_searches(lib: Any, xq: np.ndarray, filters: dict[str, Any]) -> dict[str, float]:
    """Wall and CPU p50/p95 of one-at-a-time library searches, per named filter; `search_*` is the country filter's."""
    from artefact.index.search import IMAGE, search_vectors

    out: dict[str, float] = {}
    for name, f in filters.items():
        times, cpu = [], []
        for q in xq:
            t, c = time.perf_counter(), time.thread_time()
            search_vectors(lib, q[None], [IMAGE], k=K, filters=f)
            times.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
        out[f"{name}_p50_ms"] = round(float(np.percentile(times, 50)), 2)
        out[f"{name}_p95_ms"] = round(float(np.percentile(times, 95)), 2)
        # CPU time of the searching thread: what the search costs when other work shares the cores.
        out[f"{name}_cpu_p50_ms"] = round(float(np.percentile(cpu, 50)), 2)
    out["search_p50_ms"], out["search_p95_ms"] = out["country_p50_ms"], out["country_p95_ms"]
    return out


def measure_flat_in_memory(home: Path, queries: Path, n_timed: int) -> dict[str, Any]:
    """Flat search where building a flat store is too slow here: the library's compressed store
    stays on disk, its full vectors are copied into an exact in-memory FlatStore that then answers
    the library's searches (the same `search_vectors` path, filters and all). Build, save and open
    of a flat store are not measured (the issue measured 4.1 s to read a 1M x 1280 flat file)."""
    from artefact.index.library import Library
    from artefact.index.stores.approximate import ApproximateStore
    from artefact.index.stores.flat import FlatStore

    data = np.load(queries)
    xq = data["xq"]
    filters = bench_filters(home)
    lib = Library(home)
    compressed = lib.vectors
    assert isinstance(compressed, ApproximateStore), "build a compressed store first (--types ivf-pq)"
    t0 = time.perf_counter()
    flat = FlatStore(compressed.dim)
    for ids, xb in compressed.full.iter_live(65536):
        flat.add(ids, xb)
        compressed.full.release()
    out: dict[str, Any] = {"kind": "flat (in memory, from the full vectors)", "vectors": flat.ntotal,
                           "fill_s": round(time.perf_counter() - t0, 1)}
    lib._vectors = flat  # the library searches the flat store from here on
    out.update(time_searches(lib, xq[:n_timed], filters))
    out["recall_at_10"] = 1.0
    after = rss_mib()
    out.update({"rss_mb": round(after["VmRSS"], 1)})
    return out


def run_kind(home: Path, kind: str, queries: Path, n_timed: int, target: float) -> dict[str, Any]:
    from artefact.index.library import Library
    from artefact.index.stores import files

    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmarks")}
    if kind == "flat-mem":
        log(f"{home.name}: flat search in memory over the compressed store's full vectors")
        res = subprocess.run([sys.executable, __file__, "--measure-flat-mem", str(home), str(queries), str(n_timed)],
                             capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            raise SystemExit(f"measuring flat in memory failed:\n{res.stderr[-3000:]}")
        return dict(json.loads(res.stdout))
    log(f"{home.name}: building {kind}")
    lib = Library(home)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            log(f"  {stage} {done}/{total}")

    report = lib.optimize(kind=kind, target_recall=target, progress=progress)
    build_s = time.perf_counter() - t0
    disk = files.disk_bytes(lib.index_path)
    lib.close()
    del lib  # a flat store of 1M photos holds 5 GB: free it before the measuring process loads its own
    import gc

    gc.collect()
    log(f"  built in {build_s:.0f} s: {report.get('params')} recall {report.get('recall_at_10')}")
    res = subprocess.run([sys.executable, __file__, "--measure", str(home), str(queries), str(n_timed)],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"measuring {kind} failed:\n{res.stderr[-3000:]}")
    measured = json.loads(res.stdout)
    return {"build_s": round(build_s, 1), "disk_mb": round(disk / 1e6, 1),
            "tuned": {k: report.get(k) for k in ("params", "recall_at_10", "filtered_recall_at_10", "search_ms")},
            **measured}


# -- the project's recall benchmark ------------------------------------------------------------
def recall_bench(workdir: Path, shape: sd.Shape, distractors: int, kinds: list[str]) -> dict[str, Any]:
    """recall@1 of embedding search on the project's benchmark, hidden among synthetic photos, per kind."""
    from artefact.index.bench.builder import BenchmarkSpec, build_benchmark, index_benchmark, load_benchmark
    from artefact.index.bench.metrics import rank_of, recall_at_k
    from artefact.index.catalogue import SearchFilters
    from artefact.index.library import Library
    from artefact.index.search import IMAGE, search_vectors
    from artefact.embed.preprocess import load_photo
    from _common import load_model

    sample = REPO / "data" / "sample"
    root = workdir / "recall-bench"
    home = root / "home"
    model = load_model("efficientnet-lite0", batch_size=16)
    if not (root / "queries.csv").is_file():
        build_benchmark(root, sample / "catalogue.csv", sample / "images", BenchmarkSpec(objects_per_condition=8))
    bench = load_benchmark(root)
    queries = [q for q in bench.queries() if q.expected_id is not None]
    cache = root / "query_vectors.npy"
    if not (home / "built.json").is_file():
        lib = Library(home)
        index_benchmark(lib, model, sample / "catalogue.csv", sample / "images", bench, workers=0)
        # Synthetic photos around the real ones: the compressed index must find them among many.
        from artefact.index.records import ObjectRecord
        vecs = list(sd.synthetic_photos(shape, distractors, seed=11))
        with lib.writing():
            lib.refresh()
            for chunk in vecs:
                with lib.catalogue.transaction():
                    ids = []
                    for o, v in zip(chunk.object_index, chunk.vectors):
                        pk, _ = lib.catalogue.upsert_object(ObjectRecord(f"DIS-{o:07d}", {"title": "distractor"}))
                        ids.append(lib.catalogue.add_image(pk, f"/dis/{o}/{len(ids)}.jpg", f"d{o}-{len(ids)}", 1, 0, 8, 8, v))
                lib.add_vectors(np.asarray(ids, np.int64), chunk.vectors)
                lib.mark_synced()
            lib.save()
        lib.close()
        (home / "built.json").write_text("{}")
    if cache.is_file():
        xq = np.load(cache)
    else:
        log(f"embedding {len(queries)} benchmark queries")
        arrays = [load_photo(q.photos[0], model.preprocess)[1] for q in queries]
        xq = model.embed_prepared(arrays).astype(np.float32)
        np.save(cache, xq)
    out: dict[str, Any] = {"queries": len(queries), "distractors": distractors}
    for kind in kinds:
        lib = Library(home)
        lib.optimize(kind=kind)
        ranks = []
        for q, v in zip(queries, xq):
            matches = search_vectors(lib, v[None], [IMAGE], k=10, filters=SearchFilters(include_recovered=True))
            ranks.append(rank_of([m.record.object_id for m in matches], q.expected_id, [m.score for m in matches]))
        out[kind] = {"recall_at_1": round(recall_at_k(ranks, 1), 4), "recall_at_5": round(recall_at_k(ranks, 5), 4),
                     "vectors": lib.vectors.ntotal}
        lib.close()
        log(f"recall bench {kind}: {out[kind]}")
    if len(kinds) > 1:
        out["recall_at_1_difference"] = round(out[kinds[0]]["recall_at_1"] - out[kinds[1]]["recall_at_1"], 4)
    return out


# -- local features at scale ------------------------------------------------------------------
def features_read(workdir: Path, n_photos: int, samples: int = 100, keep_store: bool = False) -> dict[str, Any]:
    """Read time of re-ranking's local features (20 candidates x 3 photos, and 20 photos) from a
    FeatureStore of n_photos records, cold (the shards' pages dropped from the page cache with
    posix_fadvise, this store's files only) and warm; the records are real SIFT features of the
    project's sample photos (see bench_features_store.py), cycled, so their size is the real one."""
    from artefact.index.features_store import FeatureStore
    from artefact.index.verification import extract
    from artefact.embed.preprocess import load_photo
    from _common import load_model

    folder = workdir / f"features-{n_photos}"
    store = FeatureStore(folder)
    t0 = time.perf_counter()
    if len(store) < n_photos:
        model = load_model("efficientnet-lite0", batch_size=16)
        photos = sorted((REPO / "data" / "sample" / "images").rglob("*.jp*g"))[:60]
        real = [extract(load_photo(p, model.preprocess)[0], "sift") for p in photos]
        # The store's own write path (shards, fsync, offset log), but each of the few real records
        # is encoded once: encoding a million copies of them would measure the CPU, not the store.
        import artefact.index.features_store as fs

        encoded = {id(f): fs.encode(f, store.keep, store.bits) for f in real}
        real_encode = fs.encode
        fs.encode = lambda f, keep=fs.KEEP, bits=fs.DESC_BITS: encoded.get(id(f)) or real_encode(f, keep, bits)  # type: ignore[assignment]
        shown = time.perf_counter()
        for start in range(len(store), n_photos, 2000):
            store.put_many([(i, real[i % len(real)]) for i in range(start, min(start + 2000, n_photos))])
            if time.perf_counter() - shown > 60:
                shown = time.perf_counter()
                log(f"features: {start + 2000} of {n_photos} photos written")
        fs.encode = real_encode  # type: ignore[assignment]
    write_s = time.perf_counter() - t0
    store.close()
    t0 = time.perf_counter()
    store = FeatureStore(folder)  # opening: the offset log read into arrays
    open_s = time.perf_counter() - t0
    shards = sorted(folder.glob("shard-*.bin"))

    def drop_cache() -> None:
        for path in shards:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    rng = np.random.default_rng(3)
    out: dict[str, Any] = {"photos": len(store), "write_s": round(write_s, 1), "open_s": round(open_s, 3),
                           **{k: v for k, v in store.stats().items() if k in ("bytes", "bytes_per_photo")}}
    # Wall time includes waiting for a core on a loaded machine; the thread's CPU time does not
    # (nor does it count waiting for the disk, which cold wall time minus warm shows).
    for n in (20, 60):
        times: dict[str, list[float]] = {"cold": [], "warm": [], "cold_cpu": [], "warm_cpu": []}
        for _ in range(samples):
            wanted = rng.choice(n_photos, n, replace=False).tolist()
            drop_cache()
            for name in ("cold", "warm"):
                t, c = time.perf_counter(), time.thread_time()
                got = store.get_many(wanted)
                times[name].append((time.perf_counter() - t) * 1e3)
                times[f"{name}_cpu"].append((time.thread_time() - c) * 1e3)
                assert len(got) == n
        for name, values in times.items():
            out[f"read_{n}_{name}_p50_ms"] = round(float(np.percentile(values, 50)), 2)
            if not name.endswith("cpu"):
                out[f"read_{n}_{name}_p95_ms"] = round(float(np.percentile(values, 95)), 2)
    store.close()
    if not keep_store:
        import shutil

        shutil.rmtree(folder)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma-separated photo counts (default 100000)")
    ap.add_argument("--types", default="ivf-pq,flat",
                    help="store kinds, in build order (default ivf-pq,flat); flat-mem: flat search in memory over "
                         "the compressed store's full vectors, for sizes where building a flat store takes too long")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/artefact-bench-scale"))
    ap.add_argument("--queries", type=int, default=300, help="held-out queries for recall")
    ap.add_argument("--timed", type=int, default=200, help="queries timed per filter")
    ap.add_argument("--flat-timed", type=int, default=30, help="queries timed per filter for flat above 200k")
    ap.add_argument("--target-recall", type=float, default=0.98)
    ap.add_argument("--recall-bench", action="store_true", help="also recall@1 on the project's benchmark")
    ap.add_argument("--recall-distractors", type=int, default=50_000)
    ap.add_argument("--features", type=int, default=0, metavar="N",
                    help="also the local-feature read time from a store of N photos (~12 KB each on disk)")
    ap.add_argument("--keep-features", action="store_true", help="keep that store in --workdir afterwards")
    ap.add_argument("--measure", nargs=3, metavar=("HOME", "QUERIES", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--measure-flat-mem", nargs=3, metavar=("HOME", "QUERIES", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_flat_mem:
        m = args.measure_flat_mem
        print(json.dumps(measure_flat_in_memory(Path(m[0]), Path(m[1]), int(m[2]))))
        return
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]), int(args.measure[2]))))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    shape = sd.shape_of(*sd.real_embeddings(args.workdir / "real_embeddings.npz"))
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}, "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        home = args.workdir / f"lib-{size}"
        info = build_catalogue(home, shape, size)
        qfile = home / "queries.npz"
        if not qfile.is_file():
            xq, _ = make_queries(home, shape, args.queries)
            filters = bench_filters(home)
            log(f"exact answers for {len(xq)} queries")
            truth, truth_country = exact_truth(home, xq, [None, filters["country"]])
            np.savez(qfile, xq=xq, truth=truth, truth_country=truth_country)
        per_kind: dict[str, Any] = {}
        for kind in [k for k in args.types.split(",") if k]:  # --types "": catalogue and exact answers only
            timed = args.flat_timed if kind.startswith("flat") and size > 200_000 else args.timed
            per_kind[kind] = run_kind(home, kind, qfile, timed, args.target_recall)
            log(f"{kind}: {json.dumps({k: v for k, v in per_kind[kind].items() if k != 'tuned'})}")
        result["sizes"][str(size)] = {"catalogue": info, "types": per_kind}
    if args.recall_bench:
        kinds = [k for k in ("flat", "ivf-pq") if k in args.types.split(",")] or ["flat", "ivf-pq"]
        result["recall_bench"] = recall_bench(args.workdir, shape, args.recall_distractors, kinds)
    if args.features:
        result["features"] = features_read(args.workdir, args.features, keep_store=args.keep_features)
        log(f"features: {json.dumps(result['features'])}")
    result["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    cols = ["kind", "build_s", "disk_mb", "open_s", "rss_open_mb", "rss_mb", "search_p50_ms", "search_p95_ms",
            "nofilter_p50_ms", "default_p50_ms", "narrow_p50_ms", "recall_at_10", "filtered_recall_at_10"]
    for size, r in result["sizes"].items():
        print(f"\n{size} photos ({r['catalogue']['objects']} objects)")
        print("  ".join(f"{c:>14}" for c in cols))
        for kind, m in r["types"].items():
            print("  ".join(f"{str(m.get(c, kind if c == 'kind' else '')):>14}" for c in cols))
    if "features" in result:
        print("\nlocal features:", json.dumps(result["features"]))
    if "recall_bench" in result:
        print("\nrecall benchmark:", json.dumps(result["recall_bench"]))


if __name__ == "__main__":
    main()
