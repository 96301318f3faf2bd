#!/bin/sh
# Refit the offline default model's built-in calibration (index/calibration.BUILTIN_ADAPTED): flat and
# turned objects together in one home, so the fit's margin weight and thresholds hold for both.
#   - the bundled sample benchmark, seed 101 (the plain model's recipe): every third query + all distractors;
#   - 40 rendered 3D objects + 16 distractors that are none of the 3D benchmark's (other seeds and ids),
#     one catalogue view each, their 4 turned query views (distractors: 2 views).
# Usage: benchmarks/three_d/builtin_calibration.sh [OUT=/tmp/artefact-cal]; prints the fits as JSON
# (`index calibrate --json`), to be copied into index/calibration.py.
set -eu
OUT=${1:-/tmp/artefact-cal}
A="${ARTEFACT:-.venv/bin/artefact}"
P="${PYTHON:-.venv/bin/python}"
$P benchmarks/three_d/make_objects.py --out "$OUT/objects" --prefix C3D --seed-offset 20000 --objects 20 --distractors 16 >&2
rm -rf "$OUT/home" "$OUT/bench101"
$A --home "$OUT/home" --offline bench-build data/sample/catalogue.csv --images data/sample/images --out "$OUT/bench101" \
  --seed 101 --index >&2
$A --home "$OUT/home" --offline index add "$OUT/objects/catalogue-1view.csv" --images "$OUT/objects/images" --workers 1 -q >&2
$P - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/bench101/queries.csv", newline="")))
picked = [r for r in rows if r["expected_id"]][::3] + [r for r in rows if not r["expected_id"]]
with open(f"{out}/queries.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["query", "expected_id"])
    w.writerows([f"{out}/bench101/{r['query']}", r["expected_id"]] for r in picked)
    w.writerows([f"{out}/objects/{r['query']}", r["expected_id"]] for r in csv.DictReader(open(f"{out}/objects/queries.csv")))
PY
$A --home "$OUT/home" --offline --json index calibrate "$OUT/queries.csv"
