#!/usr/bin/env python
"""Calibration refit on turned 3D objects: the built-in verdicts against an index's own fit.

The built-in calibration was fitted on the flat sample catalogue, where a true match is far
more similar than on a figurine turned by 40-90 degrees, so most right first answers on the
3D benchmark are "no close match". `artefact index calibrate` fits an index's own; this
script measures what that buys on objects the fit never saw:

  1. the 3D queries are split by object: odd-numbered objects (and half the distractors)
     fit, even-numbered ones test; no object is on both sides;
  2. a copy of the 1-view home is calibrated on the fit half (`artefact index calibrate`);
  3. `artefact eval` runs the test half on the original home (built-in calibration) and on
     the calibrated copy, side by side, the service's own answer order and verdicts.

  .venv/bin/python benchmarks/three_d/calibration_study.py [--data /tmp/artefact-3d] [--out /tmp/a3d-cal] [--json]

Needs the rendered benchmark and its 1-view home (make_objects.py, evaluate.sh).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTEFACT = [str(ROOT / ".venv" / "bin" / "artefact"), "--offline"]


def object_number(row: dict[str, str]) -> int:
    """R3D-T007 -> 7; a distractor's folder name (images/D007/...) the same way."""
    name = row["expected_id"] or Path(row["query"]).parent.name
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits or 0)


def split(queries: Path, out: Path) -> tuple[Path, Path, dict[str, int]]:
    with open(queries, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fit = [r for r in rows if object_number(r) % 2 == 1]
    test = [r for r in rows if object_number(r) % 2 == 0]
    paths = []
    for name, part in (("fit", fit), ("test", test)):
        path = out / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            # the query paths are relative to the benchmark folder: make them absolute
            w.writerows({**r, "query": str((queries.parent / r["query"]).resolve())} for r in part)
        paths.append(path)
    fit_ids = {r["expected_id"] for r in fit if r["expected_id"]}
    test_ids = {r["expected_id"] for r in test if r["expected_id"]}
    assert not fit_ids & test_ids, "an object on both sides"
    counts = {"fit_queries": len(fit), "fit_objects": len(fit_ids), "fit_distractors": sum(not r["expected_id"] for r in fit),
              "test_queries": len(test), "test_objects": len(test_ids),
              "test_distractors": sum(not r["expected_id"] for r in test)}
    return paths[0], paths[1], counts


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/tmp/artefact-3d"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/a3d-cal"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    home = args.data / "home-1view"
    if not (home / ".indexed").is_file():
        raise SystemExit(f"no indexed 1-view home in {args.data}: run make_objects.py and evaluate.sh first")
    args.out.mkdir(parents=True, exist_ok=True)
    fit_csv, test_csv, counts = split(args.data / "queries.csv", args.out)
    refit = args.out / "home-refit"
    shutil.rmtree(refit, ignore_errors=True)
    shutil.copytree(home, refit, symlinks=True)
    fitted = json.loads(run([*ARTEFACT, "--home", str(refit), "index", "calibrate", str(fit_csv), "--json"]))
    report_dir = args.out / "eval"
    run([*ARTEFACT, "eval", str(test_csv), "--out", str(report_dir), "--no-plots",
         "--compare", f"built-in={home}", f"refit={refit}"])
    report = json.loads((report_dir / "report.json").read_text())
    rows = []
    for r in report["runs"]:
        o = r["overall"]
        v = o["verdicts"]
        rows.append({"calibration": r["label"], "R@1": o["recall@1"], "strong recall": v["strong"]["recall"],
                     "strong precision": v["strong"]["precision"], "close recall": v["close"]["recall"],
                     "close precision": v["close"]["precision"], "FA close": v["close"]["false_alarm"],
                     "FA strong": v["strong"]["false_alarm"], "p50 ms": o["latency_ms"]["p50"]})
    out = {"split": counts, "fitted": [{k: c[k] for k in ("uses_inliers", "strong", "possible", "precision", "recall",
                                                          "samples")} for c in fitted], "test": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"split by object: {counts}")
    for c in out["fitted"]:
        print(f"fitted ({'with' if c['uses_inliers'] else 'without'} verification): held-out precision "
              f"{c['precision']}, recall {c['recall']}")
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
