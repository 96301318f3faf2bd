#!/usr/bin/env python
"""Model runtimes side by side: PyTorch vs ONNX Runtime vs OpenVINO, fp32 vs int8, in one run.

For EfficientNet-Lite0 (real ImageNet weights) and ViT-B-32 (seeded random weights: no
CLIP weights install offline here), every variant x thread count:

  latency   single-photo embed_prepared, p50 over rounds that visit the variants in turn
            (so load from other jobs on the machine hits them all alike)
  batch     batched throughput (img/s), median of rounds, batch --batch
  cpu       process CPU time per single photo and per photo of a batch: what a call costs
            whatever else runs on the machine (wall time grows with other jobs' load)
  agree     cosine to PyTorch fp32 on real photos (scikit-image + data/sample, several views)
  R@1       EfficientNet-Lite0 only: the project's recall benchmark (index/bench/builder.py on
            data/sample), similarity ranking; "own" = index and queries by the variant,
            "mixed" = index by PyTorch fp32, queries by the variant (what agreement permits)

The ratios (x torch) are what count on a shared machine; absolute figures are noisy.

  .venv/bin/python benchmarks/bench_runtime.py                       # both models, threads 1,2
  .venv/bin/python benchmarks/bench_runtime.py --models efficientnet-lite0 --threads 1 --json
  .venv/bin/python benchmarks/bench_runtime.py --cache /tmp/rt_cache  # keep exports between runs
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, REPO, dump_json, load_model, machine, make_photo, source_photos, table  # noqa: E402

VARIANTS = ("torch/fp32", "onnx/fp32", "onnx/int8", "openvino/fp32", "openvino/int8")
SAMPLE = REPO / "data" / "sample"


def photo_inputs(cfg: Any, n: int) -> list[np.ndarray]:
    from artefact.embed.preprocess import prepare

    src = source_photos()
    return [prepare(make_photo(src[i % len(src)], 640, seed=1000 + i), cfg) for i in range(n)]


def make_variants(base: Any, names: list[str], threads: list[int], cache: Path, calibration: tuple[Path, ...],
                  log: Any) -> dict[tuple[str, int], Any]:
    from artefact.embed.errors import ModelUnavailableError
    from artefact.embed.models import LoadOptions
    from artefact.embed.runtimes.registry import accelerate

    out: dict[tuple[str, int], Any] = {}
    for name in names:
        runtime, precision = name.split("/")
        for t in threads:
            if runtime == "torch":
                out[(name, t)] = base
                continue
            opts = LoadOptions(cache_dir=cache, threads=t, runtime=runtime, precision=precision,
                               batch_size=base.batch_size, calibration_photos=calibration)
            t0 = time.perf_counter()
            try:
                out[(name, t)] = accelerate(base, opts)
            except ModelUnavailableError as exc:
                log(f"  {name}: unavailable ({exc})")
                break
            log(f"  {name} threads={t}: ready in {time.perf_counter() - t0:.1f} s")
    return out


def _timed(embedder: Any, arrays: list[np.ndarray], threads: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one embed_prepared call."""
    import torch

    from artefact.embed.runtimes.registry import SessionEmbedder

    if not isinstance(embedder, SessionEmbedder):  # torch's thread count is global; a session has its own
        torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    embedder.embed_prepared(arrays)
    return time.perf_counter() - t0, time.process_time() - c0


def measure_speed(variants: dict[tuple[str, int], Any], arrays: list[np.ndarray], batch: int,
                  rounds: int, per_round: int) -> dict[tuple[str, int], dict[str, float]]:
    """Round-robin over the variants so noise from other jobs is shared out evenly."""
    lat: dict[tuple[str, int], list[float]] = {k: [] for k in variants}
    thr: dict[tuple[str, int], list[float]] = {k: [] for k in variants}
    cpu1: dict[tuple[str, int], list[float]] = {k: [] for k in variants}
    cpub: dict[tuple[str, int], list[float]] = {k: [] for k in variants}
    for key, e in variants.items():  # warm-up: first calls allocate and tune
        _timed(e, arrays[:1], key[1])
        _timed(e, arrays[:batch], key[1])
    for r in range(rounds):
        for key, e in variants.items():
            for i in range(per_round):
                wall, cpu = _timed(e, [arrays[(r * per_round + i) % len(arrays)]], key[1])
                lat[key].append(wall * 1e3)
                cpu1[key].append(cpu * 1e3)
            wall, cpu = _timed(e, arrays[:batch], key[1])
            thr[key].append(batch / wall)
            cpub[key].append(cpu * 1e3 / batch)
    # CPU time (all threads of this process) is what a call costs whatever else runs on the
    # machine; wall time is what a user waits for, and grows with the machine's load.
    return {k: {"latency_ms_p50": float(np.percentile(lat[k], 50)), "latency_ms_p95": float(np.percentile(lat[k], 95)),
                "batch_img_s": float(np.median(thr[k])), "batch_img_s_best": float(max(thr[k])),
                "cpu_ms_single": float(np.median(cpu1[k])), "cpu_ms_per_img_batch": float(np.median(cpub[k]))}
            for k in variants}


def agreement(reference: Any, other: Any, arrays: list[np.ndarray]) -> dict[str, float]:
    a, b = reference.embed_prepared(arrays), other.embed_prepared(arrays)
    cos = (a * b).sum(axis=1)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}


def build_recall_benchmark(work: Path, objects_per_condition: int, log: Any) -> Any:
    from artefact.index.bench.builder import BenchmarkSpec, build_benchmark

    t0 = time.perf_counter()
    bench = build_benchmark(work / "bench", SAMPLE / "catalogue.csv", SAMPLE / "images",
                            BenchmarkSpec(objects_per_condition=objects_per_condition, seed=7))
    log(f"recall benchmark: {bench.counts} in {time.perf_counter() - t0:.1f} s")
    return bench


def recall(variants: dict[str, Any], bench: Any, work: Path, log: Any) -> dict[str, dict[str, float]]:
    """R@1 per variant: index and queries by the variant ('own'), and PyTorch index + variant queries ('mixed')."""
    from artefact.embed.preprocess import load_for_model
    from artefact.index.bench.metrics import rank_of, recall_at_k
    from artefact.index.catalogue import SearchFilters
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library
    from artefact.index.search import IMAGE, search_vectors

    queries = [q for q in bench.queries() if q.expected_id is not None]
    torch_e = variants["torch/fp32"]
    arrays = [[load_for_model(bench.root / p, torch_e.preprocess)[0] for p in q.photos] for q in queries]
    flat = [a for arrs in arrays for a in arrs]
    filters = SearchFilters(include_recovered=True)
    libraries: dict[str, Any] = {}
    scores: dict[str, np.ndarray] = {}
    out: dict[str, dict[str, float]] = {}

    def r_at_1(library: Any, xq: np.ndarray) -> tuple[float, np.ndarray]:
        """R@1, and each query's similarity to its true object (what calibrated verdicts read)."""
        ranks, true_scores, start = [], [], 0
        for q, arrs in zip(queries, arrays):
            matches = search_vectors(library, xq[start : start + len(arrs)], [IMAGE] * len(arrs), k=10, filters=filters)
            start += len(arrs)
            ids = [m.record.object_id for m in matches]
            ranks.append(rank_of(ids, q.expected_id, [m.score for m in matches]))
            true_scores.append(matches[ids.index(q.expected_id)].score if q.expected_id in ids else np.nan)
        return recall_at_k(ranks, 1), np.asarray(true_scores)

    for name, e in variants.items():
        home = work / f"lib_{name.replace('/', '_')}"
        shutil.rmtree(home, ignore_errors=True)
        library = Library(home)
        for manifest, root in [(SAMPLE / "catalogue.csv", SAMPLE / "images"), *bench.extra_manifests]:
            ingest_manifest(library, e, manifest, root, workers=0, progress=False, local_features=None)
        libraries[name] = library
        t0 = time.perf_counter()
        xq = e.embed_prepared(flat)
        embed_s = time.perf_counter() - t0
        r1, scores[name] = r_at_1(library, xq)
        out[name] = {"r_at_1_own": r1, "queries": len(queries), "query_embed_img_s": len(flat) / embed_s}
        if name != "torch/fp32":
            out[name]["r_at_1_mixed"] = r_at_1(libraries["torch/fp32"], xq)[0]
            # How far the similarity of true matches moves: calibrated verdicts were fitted on PyTorch's.
            out[name]["true_score_shift"] = float(np.nanmean(scores[name] - scores["torch/fp32"]))
            out[name]["true_score_abs_shift"] = float(np.nanmean(np.abs(scores[name] - scores["torch/fp32"])))
        log(f"  {name}: R@1 {out[name]}")
    for library in libraries.values():
        library.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="efficientnet-lite0,vit-b-32-random", help=f"comma list of {list(MODELS)}")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of runtime/precision")
    ap.add_argument("--threads", default="1,2", help="thread counts to try (default 1,2)")
    ap.add_argument("--batch", type=int, default=16, help="batch size for throughput (default 16)")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default 5)")
    ap.add_argument("--per-round", type=int, default=3, help="single-photo calls per variant per round (default 3)")
    ap.add_argument("--objects-per-condition", type=int, default=9,
                    help="recall benchmark size: catalogue objects per condition x severity (default 9)")
    ap.add_argument("--calibration", choices=["catalogue", "builtin"], default="catalogue",
                    help="int8 calibration photos: the sample catalogue's (default) or the built-in probe photos "
                         "(what a first use on an empty home gets)")
    ap.add_argument("--no-recall", action="store_true", help="skip the recall benchmark")
    ap.add_argument("--cache", type=Path, default=None, help="model cache for the exports (default: a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    work = Path(tempfile.mkdtemp(prefix="bench_runtime_"))
    cache = args.cache or work / "cache"
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "torch/fp32" not in names:
        names.insert(0, "torch/fp32")
    threads = [int(t) for t in args.threads.split(",")]
    calibration = tuple(sorted((SAMPLE / "images").rglob("*.jpg"))) if args.calibration == "catalogue" else ()
    out: dict[str, Any] = {"benchmark": "runtime", "machine": machine(), "batch": args.batch, "models": {}}
    started = time.perf_counter()
    try:
        for mname in [m.strip() for m in args.models.split(",") if m.strip()]:
            log(f"[{mname}] loading and preparing variants ...")
            base = load_model(mname, batch_size=args.batch)
            with contextlib.redirect_stdout(sys.stderr):  # NNCF draws progress bars on stdout
                variants = make_variants(base, names, threads, cache, calibration, log)
            arrays = photo_inputs(base.preprocess, max(args.batch, 32))
            speed = measure_speed(variants, arrays, args.batch, args.rounds, args.per_round)
            best_torch = min(v["latency_ms_p50"] for (n, _), v in speed.items() if n == "torch/fp32")
            torch_thr = max(v["batch_img_s"] for (n, _), v in speed.items() if n == "torch/fp32")
            torch_cpu1 = min(v["cpu_ms_single"] for (n, _), v in speed.items() if n == "torch/fp32")
            torch_cpub = min(v["cpu_ms_per_img_batch"] for (n, _), v in speed.items() if n == "torch/fp32")
            rows = []
            for (name, t), s in speed.items():
                e = variants[(name, t)]
                rec = e.description.extra.get("runtime", {})
                rows.append({
                    "variant": name, "threads": t,
                    "latency_ms_p50": round(s["latency_ms_p50"], 1), "latency_x_torch": round(best_torch / s["latency_ms_p50"], 2),
                    "batch_img_s": round(s["batch_img_s"], 1), "batch_x_torch": round(s["batch_img_s"] / torch_thr, 2),
                    "cpu_ms_single": round(s["cpu_ms_single"], 1), "cpu_single_x_torch": round(torch_cpu1 / s["cpu_ms_single"], 2),
                    "cpu_ms_per_img_batch": round(s["cpu_ms_per_img_batch"], 1),
                    "cpu_batch_x_torch": round(torch_cpub / s["cpu_ms_per_img_batch"], 2),
                    **{k: round(v, 5) for k, v in agreement(base, e, arrays).items()},
                    "pinned_agreement": rec.get("agreement_min_cosine", 1.0),
                })
            model_out: dict[str, Any] = {"dim": base.dim, "rows": rows}
            log(table(rows, list(rows[0])))
            if mname == "efficientnet-lite0" and not args.no_recall:
                bench = build_recall_benchmark(work, args.objects_per_condition, log)
                best = {n: variants[(n, t)] for (n, t) in variants if t == threads[0]}
                model_out["recall"] = recall(best, bench, work, log)
                model_out["recall_benchmark"] = bench.counts
            out["models"][mname] = model_out
            del variants, base
    finally:
        if args.cache is None:
            shutil.rmtree(work, ignore_errors=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(dump_json(out))
        return 0
    print()
    for mname, m in out["models"].items():
        print(f"== {mname} (dim {m['dim']}); x torch = against PyTorch fp32 at its best thread count")
        print(table(m["rows"], ["variant", "threads", "latency_ms_p50", "latency_x_torch", "batch_img_s", "batch_x_torch",
                                "cpu_ms_single", "cpu_single_x_torch", "cpu_ms_per_img_batch", "cpu_batch_x_torch",
                                "min_cosine", "mean_cosine", "pinned_agreement"]))
        if "recall" in m:
            rrows = [{"variant": k, **{kk: round(vv, 4) for kk, vv in v.items()}} for k, v in m["recall"].items()]
            print(f"recall benchmark {m['recall_benchmark']}:")
            print(table(rrows, ["variant", "r_at_1_own", "r_at_1_mixed", "true_score_shift", "true_score_abs_shift",
                                "queries", "query_embed_img_s"]))
    print(f"({out['seconds']} s; {out['machine']['cpus']} CPUs: {out['machine']['cpu']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
