"""How strong is the second look's evidence? Verified correspondences of true vs false candidates, per condition.

For each labelled query: the top candidates by similarity with their SIFT inliers; prints the
inlier distribution of true and false candidates, and what re-ranking by inliers would do to
queries whose true object is not first by similarity (lifted) or is first (demoted).

Usage: .venv/bin/python benchmarks/three_d/evidence_study.py HOME QUERIES.csv [--depth 20] [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from artefact.embed.loader import embedder_for
from artefact.index.bench.queries import read_queries
from artefact.index.catalogue import SearchFilters
from artefact.index.library import Library
from artefact.index.search import search


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("home", type=Path)
    p.add_argument("queries", type=Path)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    qs = read_queries(a.queries)
    if a.limit:
        qs = qs[: a.limit]
    lib = Library(a.home)
    from artefact.embed.loader import LoadOptions

    emb = embedder_for(lib.model, None, LoadOptions(allow_download=False))
    rows = []
    for q in qs:
        res = search(lib, emb, q.photos, k=a.depth, rerank=a.depth, threshold=1.0,
                     filters=SearchFilters(include_recovered=True))
        cands = sorted(res.matches, key=lambda m: -m.score)  # embedding order
        rows.append({"condition": q.condition, "expected": q.expected_id,
                     "cands": [(m.record.object_id == q.expected_id, round(m.score, 4), m.inliers or 0) for m in cands]})
    by = defaultdict(lambda: {"true": [], "false_max": [], "n": 0})
    for r in rows:
        g = by[r["condition"] or "-"]
        g["n"] += 1
        g["true"] += [inl for t, _, inl in r["cands"] if t]
        falses = [inl for t, _, inl in r["cands"] if not t]
        g["false_max"].append(max(falses) if falses else 0)
    print(f"{'condition':<22} {'n':>4} {'true inl p25/p50/p75':>22} {'false max p50/p90/p99/max':>28}")
    for c, g in sorted(by.items()):
        t = np.array(g["true"] or [0])
        f = np.array(g["false_max"])
        print(f"{c:<22} {g['n']:>4} {np.percentile(t, 25):>8.0f}/{np.percentile(t, 50):.0f}/{np.percentile(t, 75):.0f}"
              f" {np.percentile(f, 50):>12.0f}/{np.percentile(f, 90):.0f}/{np.percentile(f, 99):.0f}/{f.max():.0f}")
    if a.json:
        a.json.write_text(json.dumps(rows))
    lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
