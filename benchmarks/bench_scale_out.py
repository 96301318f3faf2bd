#!/usr/bin/env python
"""Scale-out in one run: ingest photos/s in-process vs on Ray (1 and 2 actors), and Milvus Lite vs FAISS search.

Ingest: the same corpus (real photos, randomly cropped, flipped, jittered and resized; see
_common.make_corpus) is indexed into a fresh home by `ingest_manifest` (worker processes on
this machine) and by `ingest_on_ray` on a local Ray with one and then two embedding actors.
Each row gives the whole run's photos/s (Ray's includes its actors' start and model loads;
Ray's own start is reported apart) and when the first batch was committed. CPU seconds count
the driver with its decode workers (getrusage) and, for Ray, the `ray::` worker processes
(sampled with psutil): CPU ms per photo is what sizes a cluster.

Search: `measure_vector_stores` of benchmarks/scale_out_search.py (latency and recall@10 of
Milvus Lite vs FAISS at --vectors vectors); skipped with a note when that module is absent.

  .venv/bin/python benchmarks/bench_scale_out.py                  # 240 photos, 1 and 2 actors, search at 100k
  .venv/bin/python benchmarks/bench_scale_out.py -n 120 --skip-search --json
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, dump_json, make_corpus, table  # noqa: E402


CAVEAT = """
What {cores} cores can show: that the Ray path gives the same catalogue at a comparable rate, what the
cluster's start-up and per-actor model loads cost, and that a second actor helps only while a core is
free. What they cannot show: scaling. With 2 cores, 2 actors already take every core (the driver and
Ray's own processes share them), and on a shared, loaded machine a run's speed follows its share of the
scheduler, not the hardware. Cluster throughput is per-core rate x cores, to be measured on a cluster."""


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class RayWorkerCpu:
    """CPU seconds of this session's Ray worker processes (`ray::...`: actors and tasks), sampled while a run lasts.

    Ray's workers are not children of the driver, so getrusage misses them; an actor's last
    ~0.5 s may be missed when it exits between samples.
    """

    def __init__(self) -> None:
        import threading

        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self.stop.wait(0.5):
            for proc in psutil.process_iter(["cmdline", "cpu_times"]):
                cmd = proc.info.get("cmdline") or []
                times = proc.info.get("cpu_times")
                if cmd and cmd[0].startswith("ray::") and times is not None:
                    self.seen[proc.pid] = max(self.seen.get(proc.pid, 0.0), times.user + times.system)

    def __enter__(self) -> "RayWorkerCpu":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def seconds(self, baseline: dict[int, float]) -> float:
        return sum(v - baseline.get(pid, 0.0) for pid, v in self.seen.items())


def _ray_worker_cpu_now() -> dict[int, float]:
    import psutil

    out = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        cmd = proc.info.get("cmdline") or []
        times = proc.info.get("cpu_times")
        if cmd and cmd[0].startswith("ray::") and times is not None:
            out[proc.pid] = times.user + times.system
    return out


def timed_ingest(mode: str, run: Callable[[Callable[[int], None]], Any], n: int) -> dict[str, Any]:
    """Run one ingest: photos/s over the whole run (start-up included) and when the first batch was committed.

    No "steady" rate is given: Ray runs ahead of the driver into its object store, so the
    driver's later commits measure SQLite, not the cluster.
    """
    commits: list[float] = []

    def on_batch(done: int) -> None:
        commits.append(time.perf_counter())

    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    report = run(on_batch)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    done = report.images_added + report.images_replaced
    return {"mode": mode, "photos": done, "failed": report.images_failed, "seconds": round(wall, 1),
            "photos_per_s": round(done / wall, 2), "first_commit_s": round(commits[0] - t0, 1) if commits else None,
            "cpu_s_driver": round(cpu, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--images", type=int, default=240, help="photos in the corpus (default 240)")
    ap.add_argument("--size", type=int, default=1200, help="long side in px (default 1200)")
    ap.add_argument("--model", default="efficientnet-lite0", choices=list(MODELS))
    ap.add_argument("--runtime", default="auto", help="image-model runtime: auto (product default), torch, onnx, openvino")
    ap.add_argument("--local-features", default="sift", choices=["sift", "orb", "none"])
    ap.add_argument("--actors", default="1,2", help="comma list of Ray actor counts (default 1,2)")
    ap.add_argument("--ray-batch-size", type=int, default=16, help="photos per actor call (default 16)")
    ap.add_argument("--batch-size", type=int, default=32, help="photos per catalogue commit (default 32)")
    ap.add_argument("--vectors", type=int, default=100_000, help="vectors for the search comparison (default 100k)")
    ap.add_argument("--skip-search", action="store_true", help="ingest part only")
    ap.add_argument("--skip-ingest", action="store_true", help="search part only")
    ap.add_argument("--workdir", type=Path, default=None, help="corpus and homes (default: a temp dir, removed)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args()
    os.environ["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")  # as the `artefact` command sets it
    logging.basicConfig(level=logging.WARNING)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_average": os.getloadavg()}
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scale_out_"))
    try:
        if not args.skip_ingest:
            out["ingest"] = ingest_part(args, work, log)
        if not args.skip_search:
            out["search"] = search_part(args, work, log)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    out["load_average_after"] = os.getloadavg()
    if args.json:
        print(dump_json(out))
        return 0
    if "ingest" in out:
        print(f"\nIngest of {args.images} photos ({args.size}px, {args.model}, runtime {args.runtime}, "
              f"local features {args.local_features}) on {out['cores']} cores, load average before "
              f"{out['load_average'][0]:.1f}:")
        print(table(out["ingest"], ["mode", "photos", "failed", "seconds", "photos_per_s", "first_commit_s",
                                    "cpu_s_driver", "cpu_s_ray_workers", "cpu_ms_per_photo"]))
        print(CAVEAT.format(cores=out["cores"]))
    if isinstance(out.get("search"), dict):
        print()
        print(search_table(out["search"]))
    elif out.get("search"):
        print(f"\nSearch: {out['search']}")
    return 0


def ingest_part(args: argparse.Namespace, work: Path, log: Callable[..., None]) -> list[dict[str, Any]]:
    from artefact.embed.loader import load_embedder
    from artefact.embed.models import LoadOptions, ModelSpec
    from artefact.index.distributed_ingest import ingest_on_ray, ray_cluster
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    log(f"generating {args.images} JPEGs, long side {args.size}px in {work} ...")
    manifest, paths, total_bytes = make_corpus(work / "corpus", args.images, long_side=args.size)
    images = work / "corpus" / "images"
    backend, name, pretrained = MODELS[args.model]
    options = LoadOptions(allow_download=False, device="cpu", batch_size=args.batch_size, cache_dir=work / "models",
                          runtime=None if args.runtime == "torch" else args.runtime)
    embedder = load_embedder(ModelSpec(backend, name, pretrained), options)
    features = None if args.local_features == "none" else args.local_features
    rows = []

    def home(tag: str) -> Library:
        shutil.rmtree(work / tag, ignore_errors=True)
        return Library(work / tag)

    log("in-process ingest ...")
    with home("in_process") as lib:
        rows.append(timed_ingest("in-process (workers = cores)", lambda cb: ingest_manifest(
            lib, embedder, manifest, images, batch_size=args.batch_size, progress=False, on_batch=cb,
            local_features=features), len(paths)))
    rows[-1]["cpu_ms_per_photo"] = round(1000 * rows[-1]["cpu_s_driver"] / max(1, rows[-1]["photos"]))
    log(f"  {rows[-1]}")
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    started = time.perf_counter() - t0
    log(f"local Ray started in {started:.1f}s")
    try:
        with ray_cluster("local"):  # joins the Ray just started
            for actors in [int(a) for a in args.actors.split(",") if a.strip()]:
                log(f"Ray ingest, {actors} actor(s) ...")
                baseline = _ray_worker_cpu_now()
                with home(f"ray_{actors}") as lib, RayWorkerCpu() as workers_cpu:
                    row = timed_ingest(f"Ray, {actors} actor{'s' if actors > 1 else ''}", lambda cb: ingest_on_ray(
                        lib, embedder.description, options, manifest, images, actors=actors,
                        ray_batch_size=args.ray_batch_size, batch_size=args.batch_size, progress=False,
                        on_batch=cb, local_features=features), len(paths))
                row["cpu_s_ray_workers"] = round(workers_cpu.seconds(baseline), 1)
                row["cpu_ms_per_photo"] = round(1000 * (row["cpu_s_driver"] + row["cpu_s_ray_workers"]) / max(1, row["photos"]))
                rows.append(row)
                log(f"  {row}")
    finally:
        ray.shutdown()
    for r in rows:
        r["ray_start_s"] = round(started, 1) if r["mode"].startswith("Ray") else None
    return rows


def search_part(args: argparse.Namespace, work: Path, log: Callable[..., None]) -> Any:
    """Milvus Lite vs FAISS at args.vectors, measured by benchmarks/scale_out_search.py (the vector stores' own bench)."""
    try:
        from scale_out_search import measure_vector_stores
    except ImportError as exc:
        note = f"missing: benchmarks/scale_out_search.py has no measure_vector_stores ({exc})"
        log(note)
        return note
    log(f"search: Milvus Lite vs FAISS at {args.vectors} vectors ...")
    return measure_vector_stores(n=args.vectors, workdir=work / "search", log=log)


def search_table(result: dict[str, Any]) -> str:
    from scale_out_search import table as search_rows

    return str(search_rows(result))


if __name__ == "__main__":
    raise SystemExit(main())
