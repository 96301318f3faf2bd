#!/usr/bin/env python
"""Ingest throughput vs the model's raw batched throughput.

For each model and each (workers, model threads) setting, in the runtime --runtime picks
(default "auto": the product default, e.g. OpenVINO/ONNX Runtime; "torch" for PyTorch):
  raw     = Embedder.embed_prepared on pre-decoded 224x224 arrays, same batch size  (images/s)
  ingest  = ingest_manifest of the whole corpus into a fresh Library home            (images/s)
  ratio   = ingest / raw   (target >= 0.85: decoding never starves the model)

The corpus is N distinct JPEGs (random crops/flips/colour jitter/noise of real
photos) at --size long side (1600 default; --size 4000 = 12 MP phone photos).

  .venv/bin/python benchmarks/bench_ingest.py                       # 400 photos, both models
  .venv/bin/python benchmarks/bench_ingest.py -n 96 --models efficientnet-lite0 --configs 1:2
  .venv/bin/python benchmarks/bench_ingest.py -n 200 --size 4000 --json
  .venv/bin/python benchmarks/bench_ingest.py -n 200 --models efficientnet-lite0 --configs d:d --runtime torch,auto
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, Timer, dump_json, load_model, machine, make_corpus, runtime_label, table  # noqa: E402


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have been waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def parse_configs(text: str) -> list[tuple[int | None, int | None]]:
    """'1:2,0:2,1:1' -> [(workers, threads), ...]; 'd' means the library default."""
    out = []
    for part in text.split(","):
        w, _, t = part.strip().partition(":")
        out.append((None if w in ("", "d") else int(w), None if t in ("", "d") else int(t)))
    return out


def raw_throughput(embedder, arrays, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` images/s of embed_prepared over all arrays (after one warm-up batch)."""
    embedder.embed_prepared(arrays[: embedder.batch_size])
    best = 0.0
    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        embedder.embed_prepared(arrays)
        s = time.perf_counter() - t0
        secs.append(s)
        best = max(best, len(arrays) / s)
    return best, min(secs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--images", type=int, default=400, help="photos in the corpus (default 400)")
    ap.add_argument("--per-object", type=int, default=4, help="photos per object (default 4)")
    ap.add_argument("--size", type=int, default=1600, help="long side in px (1600 default; 4000 = 12 MP)")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--batch-size", type=int, default=32, help="model batch = ingest batch (default 32)")
    ap.add_argument("--models", default="efficientnet-lite0,vit-b-32-random", help=f"comma list of {list(MODELS)}")
    ap.add_argument(
        "--configs",
        default="d:d,1:1,2:1",
        help="comma list of WORKERS:MODEL_THREADS to try ('d' = library default; default 'd:d,1:1,2:1')",
    )
    ap.add_argument("--local-features", default="default",
                    help="'default' = library default; 'none' = vectors only (passes local_features=None when "
                         "ingest_manifest supports it); any other value is passed through (e.g. sift)")
    ap.add_argument("--runtime", default="auto",
                    help="comma list of model runtimes: auto (the product default), torch, onnx, openvino")
    ap.add_argument("--precision", default="auto", help="fp32, int8 or auto (default)")
    ap.add_argument("--model-cache", type=Path, default=None,
                    help="model cache for runtime exports (default: inside --workdir, made once per run)")
    ap.add_argument("--raw-repeats", type=int, default=2, help="raw throughput: best of this many passes")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write the corpus (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the corpus and libraries")
    ap.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                    help="set OMP_WAIT_POLICY before torch/faiss load (PASSIVE: idle OpenMP threads sleep instead of spinning)")
    ap.add_argument("--buffer-reuse", default="on",
                    help="comma list of on/off: decode workers reuse freed image buffers (embed/allocator.py; "
                         "'on,off' measures both, one after the other, per setting)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    # PASSIVE unless asked otherwise, as the `artefact` command sets it (must precede the torch import)
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING)

    import torch

    from artefact.embed.preprocess import load_for_model
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    from artefact.embed.allocator import SWITCH as BUFFER_SWITCH

    reuses = [r.strip() for r in args.buffer_reuse.split(",") if r.strip() in ("on", "off")] or ["on"]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ingest_"))
    work.mkdir(parents=True, exist_ok=True)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    log(f"generating {args.images} JPEGs, long side {args.size}px, q{args.quality} in {work} ...")
    with Timer() as tg:
        manifest, paths, total_bytes = make_corpus(
            work / "corpus", args.images, per_object=args.per_object, long_side=args.size, quality=args.quality
        )
    log(f"  {len(paths)} files, {total_bytes / len(paths) / 1e6:.2f} MB each on average, {tg.s:.1f}s")

    results = []
    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        for mname, runtime in itertools.product(models, [r.strip() for r in args.runtime.split(",") if r.strip()]):
            cfg = None
            for workers, threads in parse_configs(args.configs):
                # A compiled session fixes its threads when made: one embedder per thread count.
                embedder = load_model(mname, batch_size=args.batch_size, threads=threads,
                                      runtime=None if runtime == "torch" else runtime, precision=args.precision,
                                      cache_dir=args.model_cache or work / "models", bulk=True)
                if cfg is None:
                    cfg = embedder.preprocess
                    # decode cost alone, single core, in this process (what one worker does per photo)
                    with Timer() as td:
                        arrays = [load_for_model(p, cfg)[0] for p in paths]
                    decode_ms = td.s / len(paths) * 1e3
                if runtime == "torch":
                    torch.set_num_threads(threads or os.cpu_count() or 1)
                raw_ips, _ = raw_throughput(embedder, arrays, args.raw_repeats)
                for reuse in reuses:
                    home = work / f"lib_{mname}_{runtime}_{workers}_{threads}_{reuse}"
                    # decode workers are spawned per ingest and read the switch when they start
                    os.environ[BUFFER_SWITCH] = "1" if reuse == "on" else "0"
                    shutil.rmtree(home, ignore_errors=True)
                    lib = Library(home)
                    cpu0 = _cpu_seconds()
                    t0 = time.perf_counter()
                    extra = {}
                    if args.local_features != "default" and "local_features" in inspect.signature(ingest_manifest).parameters:
                        extra["local_features"] = None if args.local_features == "none" else args.local_features
                    rep = ingest_manifest(
                        lib, embedder, manifest, work / "corpus" / "images",
                        workers=workers, batch_size=args.batch_size, progress=False, **extra,
                    )
                    wall = time.perf_counter() - t0
                    cpu_ms = (_cpu_seconds() - cpu0) * 1e3  # this process + its reaped decode workers
                    n_ok = rep.images_added + rep.images_replaced
                    lib.close()
                    row = {
                        "model": mname,
                        "runtime": runtime_label(embedder),
                        "workers": "default" if workers is None else workers,
                        "threads": "default" if threads is None else threads,
                        "buffer_reuse": reuse,
                        "images": n_ok,
                        "failed": rep.images_failed,
                        "decode_ms_per_img_1core": round(decode_ms, 1),
                        "raw_img_s": round(raw_ips, 1),
                        "ingest_img_s": round(n_ok / wall, 1),
                        "ingest_s": round(wall, 2),
                        "ratio": round((n_ok / wall) / raw_ips, 3),
                        # CPU time per photo and the rate all cores could sustain at that cost: what the
                        # ingest needs whatever else runs on the machine (wall time grows with others' load).
                        "cpu_ms_per_img": round(cpu_ms / max(1, n_ok), 1),
                        "cpu_bound_img_s": round((os.cpu_count() or 1) * 1e3 / max(1e-9, cpu_ms / max(1, n_ok)), 1),
                    }
                    results.append(row)
                    log(
                        f"  {mname:20s} {row['runtime']:14s} workers={row['workers']} threads={row['threads']} "
                        f"buffer reuse {reuse}: "
                        f"raw {row['raw_img_s']} img/s, ingest {row['ingest_img_s']} img/s, ratio {row['ratio']}"
                    )
                    if not args.keep:
                        shutil.rmtree(home, ignore_errors=True)
                del embedder
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    out = {
        "benchmark": "ingest",
        "machine": machine(),
        "corpus": {
            "images": len(paths),
            "long_side": args.size,
            "quality": args.quality,
            "mean_bytes": round(total_bytes / len(paths)),
            "per_object": args.per_object,
            "generation_s": round(tg.s, 1),
        },
        "batch_size": args.batch_size,
        "local_features": args.local_features,
        "target_ratio": 0.85,
        "results": results,
    }
    if args.json:
        print(dump_json(out))
    else:
        print()
        print(f"corpus: {len(paths)} JPEGs, long side {args.size}px, mean {total_bytes / len(paths) / 1e6:.2f} MB; "
              f"batch {args.batch_size}; {out['machine']['cpus']} CPUs, cuda={out['machine']['cuda']}")
        print(table(results, ["model", "runtime", "workers", "threads", "buffer_reuse", "decode_ms_per_img_1core", "raw_img_s",
                              "ingest_img_s", "ingest_s", "ratio", "cpu_ms_per_img", "cpu_bound_img_s"]))
        print("ratio = ingest / raw; target >= 0.85")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
