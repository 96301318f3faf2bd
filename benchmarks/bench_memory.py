#!/usr/bin/env python
"""Peak memory of a bulk ingest (main process + decoder worker processes), at two inventory sizes.

Generates small distinct JPEGs (--min-px..--max-px long side, default 320-640) and
ingests them with ingest_manifest into a fresh Library. Each size runs in its own
child process (so high-water marks do not leak between runs) and reports:

  sampled peak total   largest instantaneous sum of VmRSS over main + all descendants (/proc, 50 ms)
  ru_maxrss self       getrusage(RUSAGE_SELF) high-water mark of the ingesting process
  ru_maxrss children   getrusage(RUSAGE_CHILDREN): the largest single reaped worker (not a sum)
  vector index MB      n * dim * 4 bytes: the in-memory flat FAISS index, which grows with the inventory

psutil is not installed in this venv; /proc and resource are used instead.

  .venv/bin/python benchmarks/bench_memory.py                 # 2000 vs 20000 images, EfficientNet-Lite0
  .venv/bin/python benchmarks/bench_memory.py --sizes 500,2000 --model vit-b-32-random
  nohup .venv/bin/python benchmarks/bench_memory.py --json > /tmp/bench_memory.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, RssSampler, Timer, dump_json, load_model, machine, make_corpus, maxrss_mib, table  # noqa: E402


def generate(root: Path, n: int, min_px: int, max_px: int, per_object: int) -> tuple[Path, float, int]:
    """Corpus with long sides spread over [min_px, max_px] (four size bands)."""
    bands = [min_px + (max_px - min_px) * i // 3 for i in range(4)]
    with Timer() as t:
        # one manifest, but photos at several sizes: generate in bands then merge the manifests
        rows, total = [], 0
        per = (n + len(bands) - 1) // len(bands)
        made = 0
        for b, px in enumerate(bands):
            m = min(per, n - made)
            if m <= 0:
                break
            man, paths, size = make_corpus(root / f"band{b}", m, per_object=per_object, long_side=px, quality=85,
                                           noise=3.0, seed=b + 1)
            total += size
            for line in man.read_text().splitlines()[1:]:
                oid, refs, *rest = line.split(",")
                refs = ";".join(f"band{b}/images/{r}" for r in refs.split(";"))
                rows.append(",".join([f"B{b}-{oid}", refs, *rest]))
            made += m
        manifest = root / "manifest.csv"
        manifest.write_text("id,images,object_type,title\n" + "\n".join(rows) + "\n")
    return manifest, t.s, total


def run_one(manifest: Path, root: Path, home: Path, model: str, workers: int | None, batch: int, threads: int | None) -> dict:
    """Runs in a fresh child process: ingest and report memory."""
    logging.basicConfig(level=logging.WARNING)
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    embedder = load_model(model, batch_size=batch, threads=threads)
    base = maxrss_mib()["ru_maxrss_self_mib"]
    lib = Library(home)
    with RssSampler() as s, Timer() as t:
        rep = ingest_manifest(lib, embedder, manifest, root, workers=workers, batch_size=batch, progress=False)
    n = rep.images_added + rep.images_replaced
    out = {
        "images": n,
        "failed": rep.images_failed,
        "seconds": round(t.s, 1),
        "img_s": round(n / t.s, 1),
        "model_loaded_rss_mib": base,
        **s.result(),
        **maxrss_mib(),
        "vector_index_mib": round(n * embedder.dim * 4 / 2**20, 1),
        "faiss_file_mib": round((home / "vectors.faiss").stat().st_size / 2**20, 1),
    }
    lib.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,20000", help="comma list of inventory sizes (default 2000,20000)")
    ap.add_argument("--model", default="efficientnet-lite0", choices=list(MODELS))
    ap.add_argument("--workers", type=int, default=None, help="decoder processes (default: library default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: library default)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--per-object", type=int, default=4)
    ap.add_argument("--min-px", type=int, default=320)
    ap.add_argument("--max-px", type=int, default=640)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                    help="set OMP_WAIT_POLICY before torch/faiss load (PASSIVE: idle OpenMP threads sleep instead of spinning)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # must precede the torch import

    if args._child:  # internal: one ingest in a fresh process
        manifest, root, home, _ = args._child
        res = run_one(Path(manifest), Path(root), Path(home), args.model, args.workers, args.batch_size, args.threads)
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in [int(x) for x in args.sizes.split(",") if x.strip()]:
            root = work / f"corpus_{n}"
            shutil.rmtree(root, ignore_errors=True)
            log(f"[{n}] generating {n} JPEGs ({args.min_px}-{args.max_px}px) ...")
            manifest, gen_s, total = generate(root, n, args.min_px, args.max_px, args.per_object)
            log(f"[{n}]   {gen_s:.0f}s, {total / n / 1e3:.0f} kB each")
            home = work / f"lib_{n}"
            shutil.rmtree(home, ignore_errors=True)
            cmd = [sys.executable, __file__, "--model", args.model, "--batch-size", str(args.batch_size),
                   "--_child", str(manifest), str(root), str(home), "x"]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            if args.threads is not None:
                cmd += ["--threads", str(args.threads)]
            log(f"[{n}] ingesting with {args.model} ...")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                log(proc.stdout[-2000:], proc.stderr[-4000:])
                raise SystemExit(f"ingest of {n} failed")
            res = {"inventory": n, "generation_s": round(gen_s, 1), **json.loads(line[0][7:])}
            results.append(res)
            log(f"[{n}] {res}")
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    out = {"benchmark": "memory", "machine": machine(), "model": args.model, "batch_size": args.batch_size,
           "results": results}
    if len(results) >= 2:
        a, b = results[0], results[-1]
        out["growth"] = {
            "images_ratio": round(b["images"] / max(1, a["images"]), 1),
            "peak_total_delta_mib": round(b["sampled_peak_total_mib"] - a["sampled_peak_total_mib"], 1),
            "vector_index_delta_mib": round(b["vector_index_mib"] - a["vector_index_mib"], 1),
        }
    if args.json:
        print(dump_json(out))
        return 0
    print()
    print(f"model {args.model}, batch {args.batch_size}; {out['machine']['cpus']} CPUs")
    print(table(results, ["inventory", "images", "seconds", "img_s", "model_loaded_rss_mib", "sampled_peak_total_mib",
                          "sampled_peak_main_mib", "sampled_peak_workers_mib", "ru_maxrss_self_mib",
                          "ru_maxrss_children_mib", "vector_index_mib", "faiss_file_mib"]))
    if "growth" in out:
        g = out["growth"]
        print(f"{g['images_ratio']}x the images: peak RSS +{g['peak_total_delta_mib']} MiB, of which the in-memory "
              f"flat vector index accounts for +{g['vector_index_delta_mib']} MiB")
    return 0


if __name__ == "__main__":
    mp.freeze_support()
    raise SystemExit(main())
