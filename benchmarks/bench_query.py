#!/usr/bin/env python
"""Query latency for a 12-megapixel phone photo against an index of --vectors images (default 100k).

Per model: builds (or reuses with --reuse) a Library of N images whose vectors are
random unit vectors of the model's dimension, inserted straight through the
Catalogue in one transaction (objects x photos-per-object), bound to the model,
then the FAISS file is built (reconcile) and saved.  Measures:

  open     Library(home) + first access to .vectors (reads the FAISS file)   [ms]
  query    artefact.index.search.search(library, embedder, photos=[12 MP JPEG], rerank=--rerank):
           decode / embed / search / rerank / total, p50 and p95 over --queries runs, plus the
           process CPU time per query (robust to other jobs on a shared machine).
           The model runs in --runtime (default auto: the product default). For the re-rank,
           the photos of the query's top candidates get real SIFT features (from real photos)
           and the index is marked as holding SIFT features: 100k feature rows would take 7 GB.
  draft    decode of the 12 MP JPEG: load_image(min_side=2*224) (JPEG DCT draft
           mode) vs a plain full PIL decode + convert("RGB")

  .venv/bin/python benchmarks/bench_query.py                         # 100k vectors, 20 queries, both models
  .venv/bin/python benchmarks/bench_query.py --vectors 10000 --queries 5 --models efficientnet-lite0
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, Timer, current_rss_mib, dump_json, jpeg_bytes, load_model, machine, make_photo, runtime_label, source_photos, summary, table  # noqa: E402


def build_library(home: Path, embedder, n_vectors: int, per_object: int, seed: int = 0,
                  shaped: bool = False, store: str = "flat") -> dict:
    """A Library of n_vectors unit vectors (per_object photos per object), its store saved.

    shaped: vectors clustered like the offline backbone's real embeddings (scale_data.py; 1280-d
    only) instead of random ones, which no compressed index can shortlist well.
    store: "flat", or "auto" = what the product picks for this size (`Library.optimize()`, as
    an ingest does once the catalogue passes the flat threshold).
    """
    from artefact.index.library import Library
    from artefact.index.records import ObjectRecord

    shutil.rmtree(home, ignore_errors=True)
    rng = np.random.default_rng(seed)
    dim = embedder.dim
    pool = None
    if shaped:
        import scale_data as sd

        shape = sd.shape_of(*sd.real_embeddings(Path(tempfile.gettempdir()) / "artefact-bench-scale" / "real_embeddings.npz"))
        if shape.dim != dim:
            raise SystemExit(f"--shaped needs the offline backbone's {shape.dim}-d vectors; this model makes {dim}-d")
        pool = np.concatenate([c.vectors for c in sd.synthetic_photos(shape, n_vectors, seed=seed)])
    t0 = time.perf_counter()
    lib = Library(home)
    lib.bind_model(embedder.description)
    cat = lib.catalogue
    n_obj = (n_vectors + per_object - 1) // per_object
    statuses = ("stolen", "looted", "missing", "recovered")
    k = 0
    with cat.transaction():
        for o in range(n_obj):
            oid = f"OBJ-{o:06d}"
            # 1 object in 50 recovered, so the default "leave recovered out" filter has work to do
            status = "recovered" if o % 50 == 49 else statuses[o % 3]
            pk, _ = cat.upsert_object(ObjectRecord(oid, {"status": status, "object_type": "benchmark", "title": oid}))
            m = min(per_object, n_vectors - k)
            if pool is not None:
                vecs = pool[k : k + m]
            else:
                vecs = rng.standard_normal((m, dim)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            for j in range(m):
                cat.add_image(pk, f"/bench/{oid}/{j}.jpg", f"{k:064x}", 1_000_000, 0, 4000, 3000, vecs[j])
                k += 1
    t_insert = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = lib.vectors.ntotal  # no FAISS file yet: reconciled from the catalogue, then saved
    lib.save()
    tuned = lib.optimize("auto") if store == "auto" else None
    t_index = time.perf_counter() - t1
    kind = lib.vectors.kind
    lib.close()
    from artefact.index.stores import files

    return {
        "vectors": n,
        "vectors_shaped_like_real": pool is not None,
        "store": kind,
        "store_params": (tuned or {}).get("params"),
        "store_recall_at_10": (tuned or {}).get("recall_at_10"),
        "objects": n_obj,
        "dim": dim,
        "catalogue_insert_s": round(t_insert, 1),
        "faiss_build_and_save_s": round(t_index, 1),
        "catalogue_mb": round((home / "catalogue.sqlite").stat().st_size / 1e6, 1),
        "faiss_mb": round(files.disk_bytes(home / "vectors.faiss") / 1e6, 1),
    }


def time_open(home: Path, repeats: int = 3) -> dict:
    from artefact.index.library import Library

    opens, totals = [], []
    rss = []
    for _ in range(repeats):
        gc.collect()
        before = current_rss_mib()
        t0 = time.perf_counter()
        lib = Library(home)
        t1 = time.perf_counter()
        n = lib.vectors.ntotal
        t2 = time.perf_counter()
        rss.append(current_rss_mib() - before)
        opens.append((t1 - t0) * 1e3)
        totals.append((t2 - t0) * 1e3)
        lib.close()
        del lib
    return {
        "catalogue_open_ms": round(min(opens), 1),
        "open_with_faiss_load_ms": round(min(totals), 1),
        "open_with_faiss_load_ms_all": [round(x, 1) for x in totals],
        "rss_growth_after_open_mib": round(max(rss), 1),
        "vectors": n,
    }


def give_candidates_features(lib, embedder, query: bytes, k: int, rerank: int) -> int:
    """Store real SIFT features for the photos the query's re-rank will read, and mark the index as SIFT."""
    from artefact.index.search import PHOTOS_PER_CANDIDATE, search
    from artefact.index.verification import DEFAULT_KIND, extract

    res = search(lib, embedder, photos=[query], k=max(k, rerank), rerank=0)
    src = source_photos()
    n = 0
    lib.local_features_kind(DEFAULT_KIND)
    with lib.catalogue.transaction():
        for m in res.matches[:rerank]:
            for img in lib.catalogue.object_images(m.record.object_id)[:PHOTOS_PER_CANDIDATE]:
                photo = make_photo(src[n % len(src)], 1600, seed=500 + n)  # catalogue-like photos, real detail
                lib.catalogue.set_features(img.image_id, extract(photo, DEFAULT_KIND).to_row())
                n += 1
    return n


def serial_search(lib, embedder, query: bytes, k: int, rerank: int):
    """search() as it was before the query's local features moved beside the embedding: decode,
    embed, search the index, then extract the query's features and verify (one after another)."""
    from artefact.embed.preprocess import load_photo
    from artefact.index.search import embed_queries, rank

    img, arr = load_photo(query, embedder.preprocess)
    xq, kinds = embed_queries(embedder, [arr], ())
    return rank(lib, xq, kinds, [img], k=k, rerank=rerank)


def make_query_jpeg(seed: int = 123, quality: int = 90) -> bytes:
    src = source_photos()[0]  # skimage astronaut (or the first sample photo)
    return jpeg_bytes(make_photo(src, 4000, seed, noise=6.0), quality)  # 4000x3000 upscaled + noise


def time_draft(data: bytes, min_side: int, repeats: int) -> dict:
    from PIL import Image

    from artefact.embed.images import load_image

    draft, full = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        img = load_image(data, min_side=min_side)
        draft.append((time.perf_counter() - t0) * 1e3)
        draft_size = img.size
        t0 = time.perf_counter()
        im = Image.open(io.BytesIO(data))
        im.load()
        im = im.convert("RGB")
        full.append((time.perf_counter() - t0) * 1e3)
        full_size = im.size
    return {
        "min_side": min_side,
        "draft_decode_ms": summary(draft),
        "draft_size": list(draft_size),
        "full_decode_ms": summary(full),
        "full_size": list(full_size),
        "speedup_p50": round(summary(full)["p50"] / summary(draft)["p50"], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=100_000, help="images in the index (default 100000)")
    ap.add_argument("--per-object", type=int, default=4, help="photos per object (default 4 -> 25k objects)")
    ap.add_argument("--queries", type=int, default=20, help="timed queries per model (default 20)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: library default = cores)")
    ap.add_argument("--models", default="efficientnet-lite0,vit-b-32-random", help=f"comma list of {list(MODELS)}")
    ap.add_argument("--runtime", default="auto", help="model runtime: auto (product default), torch, onnx, openvino")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--rerank", type=int, default=20, help="candidates given the geometric second look (default 20; 0 = off)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build libraries (default: temp dir)")
    ap.add_argument("--reuse", action="store_true", help="reuse a library already built in --workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                    help="set OMP_WAIT_POLICY before torch/faiss load (PASSIVE: idle OpenMP threads sleep instead of spinning)")
    ap.add_argument("--shaped", action="store_true",
                    help="1280-d vectors clustered like real embeddings (scale_data.py) instead of random ones")
    ap.add_argument("--store", choices=["flat", "auto"], default="flat",
                    help="flat, or auto: the store the product picks for this size (IVF-PQ beyond 10k)")
    ap.add_argument("--compare-serial-features", action="store_true",
                    help="also time the old order (query features extracted after the index search), round robin")
    ap.add_argument("--buffer-reuse", action="store_true",
                    help="this process keeps freed image buffers for reuse, as ingest's decode workers do "
                         "(embed/allocator.py); compare runs with and without it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # PASSIVE unless asked otherwise, as the `artefact` command sets it (must precede the torch import)
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.ERROR)

    from artefact.index.library import Library
    from artefact.index.search import search

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    if args.buffer_reuse:
        from artefact.embed.allocator import reuse_freed_buffers

        log(f"buffer reuse: {reuse_freed_buffers()}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_query_"))
    work.mkdir(parents=True, exist_ok=True)
    query = make_query_jpeg()
    log(f"query photo: 4000x3000 JPEG q90, {len(query) / 1e6:.2f} MB")
    out: dict = {"benchmark": "query", "machine": machine(), "query_jpeg_bytes": len(query),
                 "buffer_reuse": args.buffer_reuse, "models": {}}
    try:
        for mname in [m.strip() for m in args.models.split(",") if m.strip()]:
            embedder = load_model(mname, batch_size=32, threads=args.threads,
                                  runtime=None if args.runtime == "torch" else args.runtime, precision=args.precision,
                                  cache_dir=work / "models")
            home = work / f"lib_{mname}_{args.vectors}"
            if args.reuse and (home / "vectors.json").is_file():
                build = {"reused": str(home)}
            else:
                log(f"[{mname}] building a library of {args.vectors} vectors (dim {embedder.dim}) ...")
                build = build_library(home, embedder, args.vectors, args.per_object,
                                      shaped=args.shaped and embedder.dim == 1280, store=args.store)
            log(f"[{mname}] build: {build}")
            opened = time_open(home)
            log(f"[{mname}] open: {opened}")
            lib = Library(home)
            lib.vectors
            featured = give_candidates_features(lib, embedder, query, args.k, args.rerank) if args.rerank else 0
            search(lib, embedder, photos=[query], k=args.k, rerank=args.rerank)  # warm-up (first forward pass, caches)
            rows: dict[str, list[float]] = {"decode": [], "embed": [], "search": [], "rerank": [], "total": [], "cpu": []}
            serial: dict[str, list[float]] = {"total": [], "cpu": []}
            for _ in range(args.queries):
                t0, c0 = time.perf_counter(), time.process_time()
                res = search(lib, embedder, photos=[query], k=args.k, rerank=args.rerank)
                total = (time.perf_counter() - t0) * 1e3
                rows["cpu"].append((time.process_time() - c0) * 1e3)
                for key in ("decode", "embed", "search", "rerank"):
                    rows[key].append(res.timings_ms.get(key, 0.0))
                rows["total"].append(total)
                if args.compare_serial_features and args.rerank:  # round robin: the load hits both alike
                    t0, c0 = time.perf_counter(), time.process_time()
                    old = serial_search(lib, embedder, query, args.k, args.rerank)
                    serial["total"].append((time.perf_counter() - t0) * 1e3)
                    serial["cpu"].append((time.process_time() - c0) * 1e3)
                    assert [m.record.object_id for m in old.matches] == [m.record.object_id for m in res.matches]
            # where the search time goes: the store alone vs the recovered-objects filter query
            xq = embedder.embed_prepared([np.zeros((224, 224, 3), np.uint8)])
            faiss_ms, excl_ms = [], []
            from artefact.index.catalogue import SearchFilters

            for _ in range(max(5, args.queries // 2)):
                t0 = time.perf_counter()
                lib.vectors.search(xq, 40)
                faiss_ms.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                lib.catalogue.image_ids(SearchFilters(), negate=True)
                excl_ms.append((time.perf_counter() - t0) * 1e3)
            lib.close()
            out["models"][mname] = {
                "dim": embedder.dim,
                "runtime": runtime_label(embedder),
                "rerank": args.rerank,
                "photos_given_features": featured,
                "reranked": bool(res.reranked),
                "torch_threads": __import__("torch").get_num_threads(),
                "build": build,
                "open": opened,
                "latency_ms": {k: summary(v) for k, v in rows.items()},
                "serial_features_latency_ms": {k: summary(v) for k, v in serial.items()} if serial["total"] else None,
                "search_breakdown_ms": {
                    "store_search_k40": summary(faiss_ms),
                    "recovered_exclusion_sql": summary(excl_ms),
                },
                "matches_returned": len(res.matches),
            }
            log(f"[{mname}] latency: {out['models'][mname]['latency_ms']}")
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
            del embedder
        out["draft"] = time_draft(query, 2 * 224, repeats=max(5, args.queries // 2))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(dump_json(out))
        return 0
    print()
    print(f"index: {args.vectors} vectors; query: one 4000x3000 JPEG ({len(query) / 1e6:.2f} MB); "
          f"{args.queries} queries; {out['machine']['cpus']} CPUs, cuda={out['machine']['cuda']}")
    rows_out = []
    for m, r in out["models"].items():
        lat = r["latency_ms"]
        rows_out.append({
            "model": m, "runtime": r["runtime"], "dim": r["dim"],
            "decode p50/p95": f"{lat['decode']['p50']:.0f}/{lat['decode']['p95']:.0f}",
            "embed p50/p95": f"{lat['embed']['p50']:.0f}/{lat['embed']['p95']:.0f}",
            "search p50/p95": f"{lat['search']['p50']:.0f}/{lat['search']['p95']:.0f}",
            f"rerank {r['rerank']} p50/p95": f"{lat['rerank']['p50']:.0f}/{lat['rerank']['p95']:.0f}",
            "total p50/p95": f"{lat['total']['p50']:.0f}/{lat['total']['p95']:.0f}",
            "CPU ms p50": f"{lat['cpu']['p50']:.0f}",
            "open ms": r["open"]["open_with_faiss_load_ms"],
            "faiss MB": r["build"].get("faiss_mb", ""),
        })
    print(table(rows_out, list(rows_out[0])))
    print("(all ms; 'search' = artefact search_vectors incl. catalogue look-ups)")
    for m, r in out["models"].items():
        if r.get("serial_features_latency_ms"):
            sl, lat = r["serial_features_latency_ms"], r["latency_ms"]
            print(f"  {m}: query features extracted after the search (before): total p50 {sl['total']['p50']} ms, "
                  f"CPU {sl['cpu']['p50']} ms; beside the embedding (now): total p50 {lat['total']['p50']} ms, "
                  f"CPU {lat['cpu']['p50']} ms")
    for m, r in out["models"].items():
        b = r["search_breakdown_ms"]
        print(f"  {m}: vector store search alone (k 40) p50 {b['store_search_k40']['p50']} ms; "
              f"recovered-exclusion SQL (run by every default search) p50 {b['recovered_exclusion_sql']['p50']} ms")
    d = out["draft"]
    print(f"12 MP decode: draft mode (min_side {d['min_side']}) p50 {d['draft_decode_ms']['p50']} ms -> "
          f"{d['draft_size']}; full PIL decode p50 {d['full_decode_ms']['p50']} ms -> {d['full_size']}; "
          f"{d['speedup_p50']}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
