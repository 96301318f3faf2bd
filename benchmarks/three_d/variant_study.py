"""Cheap viewpoint-robustness variants, measured on embeddings alone (no index): R@1/R@5 with 1, 2 and 4 catalogue views.

Variants: the plain embedding; test-time flip of the query (mean of the photo and its mirror);
flip on both sides; a centre crop averaged in; and two query photos (best view pair, as search fuses them).
Every catalogue object is scored by its best-matching view pair (max over its views and the query's photos).

Usage: .venv/bin/python benchmarks/three_d/variant_study.py [--data /tmp/artefact-3d]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from artefact.embed.loader import load_embedder
from artefact.embed.models import OFFLINE_FALLBACK_SPEC, LoadOptions
from artefact.embed.preprocess import load_photo, prepare

VIEWS = {1: ("c000",), 2: ("c000", "c180"), 4: ("c000", "c180", "c090", "c270")}


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _colour_hist(img: Image.Image) -> np.ndarray:
    """Hue-saturation histogram of the photo's centre (where the object is), L1-normalised; dark pixels left out."""
    w, h = img.size
    hsv = np.asarray(img.crop((w // 5, h // 8, w - w // 5, h - h // 10)).convert("HSV"), dtype=np.int32).reshape(-1, 3)
    hsv = hsv[hsv[:, 2] > 40]
    hist = np.bincount((hsv[:, 0] // 32) * 8 + hsv[:, 1] // 32, minlength=64).astype(np.float64)
    return hist / max(hist.sum(), 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/artefact-3d"))
    a = p.parse_args(argv)
    emb = load_embedder(OFFLINE_FALLBACK_SPEC, LoadOptions(allow_download=False))
    cfg = emb.preprocess
    with (a.data / "catalogue-4views.csv").open() as f:
        objects = [r["id"] for r in csv.DictReader(f)]
    with (a.data / "queries.csv").open() as f:
        qrows = list(csv.DictReader(f))

    def embed_variants(path: Path) -> dict[str, np.ndarray]:
        img, arr = load_photo(path, cfg)
        w, h = img.size
        crop = prepare(img.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9))), cfg)
        e = emb.embed_prepared([arr, np.ascontiguousarray(arr[:, ::-1]), crop])
        return {"plain": e[0], "flip": _norm(e[0] + e[1]), "crop": _norm(e[0] + e[2]), "hist": _colour_hist(img)}

    t0 = time.perf_counter()
    cat = {(o, v): embed_variants(a.data / "images" / o / f"{v}.png") for o in objects for v in VIEWS[4]}
    qs = [(r, embed_variants(a.data / r["query"])) for r in qrows]
    print(f"embedded {len(cat)} catalogue views and {len(qs)} queries in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    true_q = [(r, e) for r, e in qs if r["expected_id"]]
    variants = {"plain": ("plain", "plain"), "query flip": ("flip", "plain"), "flip both sides": ("flip", "flip"),
                "query crop": ("crop", "plain")}
    print(f"{'variant':<18} {'views':>5} {'R@1 all':>8} {'R@1 tex':>8} {'R@1 plain':>9} {'R@5 all':>8}")
    for name, (qv, cv) in variants.items():
        for n in (1, 2, 4):
            xb = np.stack([np.stack([cat[(o, v)][cv] for v in VIEWS[n]]) for o in objects])  # (objects, views, d)
            ranks = {"all": [], "turned-textured": [], "turned-plain": []}
            for r, e in true_q:
                s = (xb @ e[qv]).max(axis=1)
                rank = int((s > s[objects.index(r["expected_id"])]).sum()) + 1
                ranks["all"].append(rank)
                ranks[r["condition"]].append(rank)
            f = {k: np.asarray(v) for k, v in ranks.items()}
            print(f"{name:<18} {n:>5} {np.mean(f['all'] == 1):>8.3f} {np.mean(f['turned-textured'] == 1):>8.3f} "
                  f"{np.mean(f['turned-plain'] == 1):>9.3f} {np.mean(f['all'] <= 5):>8.3f}")
    for w in (0.05, 0.1, 0.2):  # colour cue fused with a small weight: histogram intersection
        for n in (1, 4):
            xb = np.stack([np.stack([cat[(o, v)]["plain"] for v in VIEWS[n]]) for o in objects])
            hb = np.stack([np.stack([cat[(o, v)]["hist"] for v in VIEWS[n]]) for o in objects])
            r1 = []
            for r, e in true_q:
                s = (xb @ e["plain"] + w * np.minimum(hb, e["hist"]).sum(axis=2)).max(axis=1)
                r1.append(int((s > s[objects.index(r["expected_id"])]).sum()) == 0)
            print(f"{'colour w=' + str(w):<18} {n:>5} {np.mean(r1):>8.3f}")
    # two query photos of the object (both sides the officer photographed): best view pair
    by_obj: dict[str, list[np.ndarray]] = {}
    for r, e in true_q:
        by_obj.setdefault(r["expected_id"], []).append(e["plain"])
    for n in (1, 2, 4):
        xb = np.stack([np.stack([cat[(o, v)]["plain"] for v in VIEWS[n]]) for o in objects])
        hits = []
        for oid, es in by_obj.items():
            for pair in ((0, 2), (1, 3)):  # q040+q320, q080+q290: two sides of the object
                s = np.einsum("ovd,qd->oqv", xb, np.stack([es[i] for i in pair])).max(axis=(1, 2))
                hits.append(int((s > s[objects.index(oid)]).sum()) == 0)
        print(f"{'two query photos':<18} {n:>5} {np.mean(hits):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
