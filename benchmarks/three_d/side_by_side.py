"""One side-by-side run per ranking variant on the recall benchmark and the 3D benchmark, through `artefact eval`'s runner.

Each variant is a set of `search()` options; every query goes through `search()` one by one
(latency = what an officer waits for). Prints one row per (variant, benchmark) and writes each
benchmark's report.json under --out.

Usage:
  .venv/bin/python benchmarks/three_d/side_by_side.py \\
      --bench sample=/tmp/a3d-eval/home-sample:/tmp/a3d-eval/bench7/eval-subset.csv \\
      --bench 3d-1view=/tmp/artefact-3d/home-1view:/tmp/artefact-3d/queries.csv \\
      --variant "today=strong_evidence=0" --variant "default=" --out /tmp/a3d-eval/side
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from artefact.embed.loader import embedder_for
from artefact.embed.models import LoadOptions
from artefact.index.bench.queries import read_queries
from artefact.index.bench.report import write_report
from artefact.index.bench.runner import evaluate
from artefact.index.library import Library


def parse_options(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        out[k] = json.loads(v) if v else True
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", action="append", required=True, help="NAME=HOME:QUERIES.csv")
    p.add_argument("--variant", action="append", required=True, help="LABEL=opt=value,opt=value (search options)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args(argv)
    variants = [(v.partition("=")[0], parse_options(v.partition("=")[2])) for v in a.variant]
    rows = []
    for spec in a.bench:
        name, _, rest = spec.partition("=")
        home, _, qpath = rest.partition(":")
        qs = read_queries(Path(qpath))[: a.limit or None]
        library = Library(Path(home))
        embedder = embedder_for(library.model, None, LoadOptions(allow_download=False))
        runs = []
        for label, options in variants:
            run = evaluate(library, embedder, qs, label=label, search_options=options)
            runs.append(run)
            o = run.summary()["overall"]
            v = o["verdicts"]
            rows.append((label, name, o["recall@1"], o["recall@5"], v["strong"]["recall"], v["strong"]["precision"],
                         v["close"]["false_alarm"], v["strong"]["false_alarm"], o["latency_ms"]["p50"], o["latency_ms"]["p95"]))
            print(_fmt(rows[-1]), flush=True)
        write_report(a.out / name, runs, plots=False)
        library.close()
    print(f"{'variant':<14} {'benchmark':<12} {'R@1':>6} {'R@5':>6} {'strongR':>7} {'strongP':>7} {'FA close':>8} "
          f"{'FA strong':>9} {'p50 ms':>7} {'p95 ms':>7}")
    for r in rows:
        print(_fmt(r))
    return 0


def _fmt(r: tuple[Any, ...]) -> str:
    def f(x: Any) -> str:
        return "-" if x is None or x != x else f"{x:.3f}"

    return (f"{r[0]:<14} {r[1]:<12} {f(r[2]):>6} {f(r[3]):>6} {f(r[4]):>7} {f(r[5]):>7} {f(r[6]):>8} {f(r[7]):>9} "
            f"{r[8]:>7.0f} {r[9]:>7.0f}")


if __name__ == "__main__":
    sys.exit(main())
