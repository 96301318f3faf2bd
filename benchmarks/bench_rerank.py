"""What the geometric second look costs per query: search with re-ranking of N candidates vs without.

Indexes the bundled sample catalogue with the offline EfficientNet-Lite0 backbone
(SIFT features stored at ingest), then runs each query photo with rerank=0 and
rerank=N back to back and reports the added milliseconds (query feature
extraction + matching + RANSAC), p50/p95. Target: <= 300 ms for 20 candidates.

    .venv/bin/python benchmarks/bench_rerank.py [--queries CSV] [--candidates 20] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dump_json, load_model, machine, summary, table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, help="query list (query,expected_id,...); default: data/sample/queries")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=int, default=60, help="at most this many query photos")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from artefact.index.bench.queries import read_queries
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library
    from artefact.index.search import search

    sample = REPO / "data" / "sample"
    photos = ([p for q in read_queries(args.queries) for p in q.photos] if args.queries
              else sorted(p for p in (sample / "queries").iterdir() if p.suffix in (".jpg", ".heic")))[: args.limit]
    embedder = load_model("efficientnet-lite0")
    with tempfile.TemporaryDirectory() as home:
        library = Library(Path(home))
        ingest_manifest(library, embedder, sample / "catalogue.csv", sample / "images", workers=0, progress=False)
        search(library, embedder, [photos[0]], k=10, rerank=args.candidates)  # warm-up
        added, rerank_stage, plain_total = [], [], []
        for _ in range(args.repeat):
            for photo in photos:
                plain = search(library, embedder, [photo], k=10, rerank=0)
                ranked = search(library, embedder, [photo], k=10, rerank=args.candidates)
                plain_total.append(sum(plain.timings_ms.values()))
                rerank_stage.append(ranked.timings_ms["rerank"])
                added.append(sum(ranked.timings_ms.values()) - plain_total[-1])
        library.close()
    rows = [
        {"measure": "query without re-ranking (total ms)", **summary(plain_total)},
        {"measure": f"re-rank stage, {args.candidates} candidates (ms)", **summary(rerank_stage)},
        {"measure": "added per query (total with - without, ms)", **summary(added)},
    ]
    if args.json:
        print(dump_json({"machine": machine(), "queries": len(photos), "repeat": args.repeat, "rows": rows}))
        return 0
    print(f"{len(photos)} query photos x {args.repeat}, sample catalogue (33 photos), EfficientNet-Lite0 + SIFT")
    print(table(rows, ["measure", "p50", "p95", "mean", "max"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
