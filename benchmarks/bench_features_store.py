"""Compact local features: recall@1 with geometric re-ranking per storage setting, bytes per photo, read time.

    .venv/bin/python benchmarks/bench_features_store.py [--objects-per-condition 6] [--json]

The project's recall benchmark (bench-build on data/sample: checkpoint-like query photos,
real second views, distractors) is indexed with EfficientNet-Lite0; every catalogue
photo's SIFT features (512 keypoints, as extracted) are then stored under each setting
(strongest N keypoints kept, descriptors at 8 or 4 bits) and every query is ranked with
re-ranking of 20 candidates, query features always full. Printed per setting: recall@1 and
@5, mean bytes per photo. Then a store of --photos synthetic records is read for 20
candidates x 3 photos, p50/p95 ms (the page cache warm, as on a serving machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, load_model  # noqa: E402

SETTINGS = [(512, 8), (512, 4), (256, 4), (224, 4), (160, 4), (128, 8)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects-per-condition", type=int, default=6)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "artefact-bench-features")
    ap.add_argument("--photos", type=int, default=20000, help="records in the read-time store")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from artefact.embed.preprocess import load_photo
    from artefact.index.bench.builder import BenchmarkSpec, build_benchmark, index_benchmark, load_benchmark
    from artefact.index.bench.metrics import rank_of, recall_at_k
    from artefact.index.catalogue import SearchFilters
    from artefact.index.features_store import FeatureStore, decode, encode
    from artefact.index.library import Library
    from artefact.index.search import IMAGE, rank
    from artefact.index.verification import extract

    sample = REPO / "data" / "sample"
    root = args.workdir
    model = load_model("efficientnet-lite0", batch_size=16)
    if not (root / "queries.csv").is_file():
        build_benchmark(root, sample / "catalogue.csv", sample / "images",
                        BenchmarkSpec(objects_per_condition=args.objects_per_condition))
    bench = load_benchmark(root)
    queries = [q for q in bench.queries() if q.expected_id is not None]
    home = root / "home"
    library = Library(home)
    if library.model is None:
        index_benchmark(library, model, sample / "catalogue.csv", sample / "images", bench, workers=0)
    # Full features of every catalogue photo, as extracted (what the old rows held).
    ids = library.catalogue.image_ids().tolist()
    paths = library.catalogue.images_by_id(ids)
    full = {i: extract(load_photo(Path(paths[i][1].path), model.preprocess)[0], "sift") for i in ids}
    prepared = []
    for q in queries:
        img, arr = load_photo(q.photos[0], model.preprocess)
        prepared.append((q, model.embed_prepared([arr]).astype(np.float32), extract(img, "sift")))
    results = []
    for keep, bits in SETTINGS:
        stored = {i: decode(encode(f, keep, bits)) for i, f in full.items()}
        size = float(np.mean([len(encode(f, keep, bits)) for f in full.values()]))
        library.features_of = lambda wanted, s=stored: {int(i): s[int(i)] for i in wanted if int(i) in s}  # type: ignore[method-assign]
        ranks = []
        t0 = time.perf_counter()
        for q, xq, qf in prepared:
            res = rank(library, xq, [IMAGE], [qf], k=10, filters=SearchFilters(include_recovered=True), rerank=20)
            ranks.append(rank_of([m.record.object_id for m in res.matches], q.expected_id))
        results.append({"keep": keep, "bits": bits, "bytes_per_photo": round(size), "recall_at_1": round(recall_at_k(ranks, 1), 4),
                        "recall_at_5": round(recall_at_k(ranks, 5), 4), "s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    library.close()
    # Read time: 20 candidates x 3 photos from a store of many records.
    rng = np.random.default_rng(0)
    store = FeatureStore(root / f"read-store-{args.photos}")
    if len(store) < args.photos:
        some = list(full.values())
        for start in range(0, args.photos, 1000):
            store.put_many([(i, some[i % len(some)]) for i in range(start, min(start + 1000, args.photos))])
    times = []
    for _ in range(200):
        wanted = rng.choice(args.photos, 60, replace=False).tolist()
        t0 = time.perf_counter()
        got = store.get_many(wanted)
        times.append((time.perf_counter() - t0) * 1e3)
        assert len(got) == 60
    read = {"photos": len(store), "read_60_p50_ms": round(float(np.percentile(times, 50)), 2),
            "read_60_p95_ms": round(float(np.percentile(times, 95)), 2), **store.stats()}
    out = {"queries": len(prepared), "catalogue_photos": len(full), "settings": results, "read": read}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for r in results:
        print(f"keep {r['keep']:>3} x {r['bits']} bit: {r['bytes_per_photo']:>6} B/photo  recall@1 {r['recall_at_1']:.3f}  "
              f"recall@5 {r['recall_at_5']:.3f}")
    print(f"read 20 candidates x 3 photos from {read['photos']} records: p50 {read['read_60_p50_ms']} ms, "
          f"p95 {read['read_60_p95_ms']} ms")


if __name__ == "__main__":
    main()
