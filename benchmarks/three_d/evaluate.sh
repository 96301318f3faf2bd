#!/bin/sh
# Index the rendered 3D benchmark (1, 2 and 4 catalogue views) and evaluate it with `artefact eval`.
# Usage: benchmarks/three_d/evaluate.sh [DATA=/tmp/artefact-3d] [OUT=/tmp/artefact-3d/eval] [EXTRA eval options...]
# Run make_objects.py first. Uses the offline EfficientNet-Lite0 backbone (today's default, adapted to turned
# views; MODEL=tf_efficientnet_lite0 for the plain one); homes are kept, so reruns only evaluate.
set -eu
DATA=${1:-/tmp/artefact-3d}
OUT=${2:-$DATA/eval}
[ $# -ge 2 ] && shift 2 || shift $#
A="${ARTEFACT:-.venv/bin/artefact}"
MODEL_FLAG=${MODEL:+--model $MODEL}
for n in 1view 2views 4views; do
  if [ ! -d "$DATA/home-$n/catalogue.sqlite3" ] && [ ! -f "$DATA/home-$n/.indexed" ]; then
    $A --home "$DATA/home-$n" --backend efficientnet_lite0 $MODEL_FLAG --offline index add "$DATA/catalogue-$n.csv" \
      --images "$DATA/images" --workers 1 -q
    touch "$DATA/home-$n/.indexed"
  fi
done
$A --offline eval "$DATA/queries.csv" --out "$OUT/one-photo" --no-plots \
  --compare "1view=$DATA/home-1view" "2views=$DATA/home-2views" "4views=$DATA/home-4views" "$@"
$A --offline eval "$DATA/queries-2photos.csv" --out "$OUT/two-photos" --no-plots \
  --compare "1view=$DATA/home-1view" "2views=$DATA/home-2views" "4views=$DATA/home-4views" "$@"
