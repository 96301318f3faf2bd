#!/usr/bin/env python
"""What one `artefact search` costs an officer, process start to answer, per model runtime.

A CLI search is a fresh process: it imports the program, loads the index, opens the model
(a compiled runtime straight from its pinned export, without importing PyTorch; PyTorch
imports torch and timm and builds the model) and then embeds and verifies one photo.
Per-photo latency (bench_runtime.py) misses the start-up, which every search pays. This runs the real command
on the sample catalogue (SIFT second look on, as by default), visiting the runtimes in turn so
the machine's load hits them alike, and reports wall time p50/p95 per runtime.

  .venv/bin/python benchmarks/bench_cli_search.py                 # torch, onnx, openvino; 7 rounds
  .venv/bin/python benchmarks/bench_cli_search.py --runtimes onnx,openvino --rounds 11 --json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, dump_json, machine, pct, table  # noqa: E402

SAMPLE = REPO / "data" / "sample"
QUERY = SAMPLE / "queries" / "query-painting-SMP-PAINT-01.jpg"
ARTEFACT = Path(sys.executable).with_name("artefact")


def run(home: Path, *args: str) -> float:
    """Wall seconds of one `artefact` command (fails loudly: a broken run must not become a figure)."""
    t0 = time.perf_counter()
    done = subprocess.run([str(ARTEFACT), "--home", str(home), *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"artefact {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtimes", default="torch,onnx,openvino", help="comma list of fp32 runtimes")
    ap.add_argument("--rounds", type=int, default=7, help="searches per runtime (default 7)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the home here (default: a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]

    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        home = (args.workdir or Path(tmp)) / "home"
        say = (lambda m: print(m, file=sys.stderr)) if args.json else print
        t0 = time.perf_counter()
        run(home, "--backend", "efficientnet_lite0", "-q", "index", "add", str(SAMPLE / "catalogue.csv"),
            "--images", str(SAMPLE / "images"))
        say(f"sample catalogue indexed in {time.perf_counter() - t0:.1f} s")
        for rt in runtimes:  # first use of each runtime makes its export and compiled cache: not timed
            run(home, "--runtime", rt, "--precision", "fp32", "search", "--json", str(QUERY))
        walls: dict[str, list[float]] = {rt: [] for rt in runtimes}
        for _ in range(args.rounds):
            for rt in runtimes:
                walls[rt].append(run(home, "--runtime", rt, "--precision", "fp32", "search", "--json", str(QUERY)))
        base = pct(walls[runtimes[0]], 50)
        rows = [{"runtime": f"{rt}/fp32", "wall_s_p50": round(pct(w, 50), 3), "wall_s_p95": round(pct(w, 95), 3),
                 f"x_{runtimes[0]}": round(base / pct(w, 50), 2)} for rt, w in walls.items()]
        result = {"machine": machine(), "query": QUERY.name, "rounds": args.rounds,
                  "threads_default": os.cpu_count(), "rows": rows}
        if args.json:
            print(dump_json(result))
        else:
            print(table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
