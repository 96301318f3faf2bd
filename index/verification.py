"""Second look: local features, matched and checked for geometric consistency (RANSAC homography).

Global embeddings find look-alikes; two photos of the *same* object also share many
local details in a consistent geometric arrangement, which look-alikes do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

# SIFT by default: its descriptors separate true pairs from look-alikes better than ORB's.
# No script in benchmarks/ measures that yet (build one index per kind with
# `artefact index add --local-features sift|orb` and compare them with `artefact eval`).
# 512 features keep storage (~66 KB per photo) and matching affordable. Working size 480 px,
# measured (issue 13, two benchmark builds of the sample catalogue, 468 true queries, re-rank 20):
# verified R@1 0.9295 at 480 and at 640 alike, while SIFT costs half the CPU (74 vs 148 ms per
# photo on the shared 2-core box): OpenCV's SIFT doubles its input first, so its cost grows
# faster than the pixel count.
DEFAULT_KIND = "sift"
DEFAULT_MAX_SIDE = 480
DEFAULT_N_FEATURES = 512
RATIO = 0.8  # Lowe's ratio test
MIN_MATCHES = 8
RANSAC_FRACTION = 0.008  # reprojection error allowed, as a fraction of the image's long side (3.8 px at 480)
MIN_WORKING_SIDE = 320  # tiny catalogue photos are enlarged so the detector finds anything


# How the catalogue stores one photo's features: kind, count, working width and height,
# keypoint positions and descriptors as raw bytes (see `Features.to_row` / `from_row`).
FeatureRow = tuple[str, int, int, int, bytes, bytes]


@dataclass
class Features:
    """Keypoint positions (in the working image, pixels) and descriptors of one photo."""

    kind: str
    xy: np.ndarray  # (n, 2) float32
    desc: np.ndarray  # (n, d) uint8
    size: tuple[int, int]  # working image (width, height)

    def __len__(self) -> int:
        return len(self.xy)

    def to_row(self) -> FeatureRow:
        return (self.kind, len(self), self.size[0], self.size[1],
                np.ascontiguousarray(self.xy, np.float32).tobytes(), np.ascontiguousarray(self.desc, np.uint8).tobytes())

    @classmethod
    def from_row(cls, kind: str, n: int, w: int, h: int, xy: bytes, desc: bytes) -> "Features":
        xy_arr = np.frombuffer(xy, np.float32).reshape(n, 2)
        d_arr = np.frombuffer(desc, np.uint8).reshape(n, -1) if n else np.zeros((0, 128), np.uint8)
        return cls(kind, xy_arr, d_arr, (w, h))


@dataclass
class Verification:
    """Geometrically consistent correspondences between a query and a catalogue photo."""

    inliers: int
    query_xy: np.ndarray  # (m, 2) inlier points in the query working image
    cand_xy: np.ndarray  # (m, 2) in the catalogue working image
    # The working images' (width, height) the points refer to: features stored by an older
    # version may have been extracted at another working size than today's default.
    query_size: tuple[int, int] | None = None
    cand_size: tuple[int, int] | None = None


def working_image(img: Image.Image, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    long_side = max(img.size)
    if long_side > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    elif long_side < MIN_WORKING_SIDE:
        scale = MIN_WORKING_SIDE / long_side
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    return img


def extract(img: Image.Image, kind: str = DEFAULT_KIND, n_features: int = DEFAULT_N_FEATURES,
            max_side: int = DEFAULT_MAX_SIDE) -> Features:
    """Local features of an upright RGB photo (resized so its long side is at most max_side)."""
    import cv2

    work = working_image(img, max_side)
    grey = np.asarray(work.convert("L"))
    if kind == "sift":
        detector = cv2.SIFT_create(nfeatures=n_features)  # type: ignore[attr-defined]
    elif kind == "orb":
        detector = cv2.ORB_create(nfeatures=n_features)  # type: ignore[attr-defined]
    else:
        raise ValueError(f"unknown local feature kind {kind!r} (sift or orb)")
    keypoints, desc = detector.detectAndCompute(grey, None)
    if desc is None or not keypoints:
        return Features(kind, np.zeros((0, 2), np.float32), np.zeros((0, 32 if kind == "orb" else 128), np.uint8), work.size)
    xy = np.array([k.pt for k in keypoints], dtype=np.float32)
    # SIFT descriptors are floats in 0..255 already; uint8 keeps them at a quarter of the size.
    return Features(kind, xy, np.clip(desc, 0, 255).astype(np.uint8), work.size)


def _normalised(desc: np.ndarray, kind: str) -> np.ndarray:
    if kind == "sift":  # RootSIFT: Hellinger kernel as a dot product
        d = desc.astype(np.float32)
        d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-6)
        return np.sqrt(d)
    bits = np.unpackbits(desc, axis=1).astype(np.float32)  # ORB: Hamming via +-1 dot product
    return (bits * 2 - 1) / np.sqrt(bits.shape[1])


def verify_many(query: Features, candidates: Sequence[Features]) -> list[Verification]:
    """Match the query against each candidate, ratio-test, then RANSAC a homography.

    The descriptor distances of all candidates come from one matrix product, so a
    query against 20 candidates costs about as much as a few pairwise matches.
    """
    import cv2

    empty = Verification(0, np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    if len(query) < MIN_MATCHES or not candidates:
        return [empty for _ in candidates]
    q = _normalised(query.desc, query.kind)
    sizes = [len(c) for c in candidates]
    stacked = np.vstack([_normalised(c.desc, c.kind) for c in candidates if len(c)] or [np.zeros((0, q.shape[1]), np.float32)])
    sim = q @ stacked.T if len(stacked) else np.zeros((len(q), 0), np.float32)
    out: list[Verification] = []
    start = 0
    for cand, n in zip(candidates, sizes):
        block = sim[:, start : start + n]
        start += n
        if n < 2:
            out.append(empty)
            continue
        rows = np.arange(len(block))
        best = block.argmax(axis=1)
        s_best = block[rows, best]
        second = block.copy()
        second[rows, best] = -np.inf
        s_second = second.max(axis=1)
        # Distances on unit vectors: d = sqrt(2 - 2 s); ratio test d1 < RATIO * d2.
        d1 = np.sqrt(np.maximum(2 - 2 * s_best, 0))
        d2 = np.sqrt(np.maximum(2 - 2 * s_second, 0))
        keep = d1 < RATIO * d2
        # One-to-one: a catalogue keypoint keeps only its best query partner, so many
        # query points piling onto one spot cannot pose as agreement.
        mutual = block.argmax(axis=0)[best] == rows
        keep &= mutual
        if keep.sum() < MIN_MATCHES:
            out.append(empty)
            continue
        src = query.xy[keep]
        dst = cand.xy[best[keep]]
        H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_FRACTION * max(cand.size))
        if H is None or mask is None or not _plausible(H, src[mask.ravel().astype(bool)], dst[mask.ravel().astype(bool)], cand.size):
            out.append(empty)
            continue
        inl = mask.ravel().astype(bool)
        out.append(Verification(int(inl.sum()), src[inl], dst[inl], query.size, cand.size))
    return out


def _plausible(H: np.ndarray, src: np.ndarray, dst: np.ndarray, cand_size: tuple[int, int]) -> bool:
    """Reject degenerate fits: a collapsing or mirroring map, or inliers bunched in a corner."""
    if len(src) < MIN_MATCHES:
        return False
    det = float(np.linalg.det(H[:2, :2]))
    if not 1 / 50 < det < 50:  # area scale between the two photos; negative = mirrored
        return False
    spread = np.ptp(dst, axis=0) / np.maximum(np.asarray(cand_size, dtype=np.float32), 1)
    return bool(spread.min() > 0.1)  # inliers cover at least a tenth of the photo each way


def draw_evidence(query_img: Image.Image, cand_img: Image.Image, v: Verification,
                  max_side: int = DEFAULT_MAX_SIDE, max_lines: int = 150) -> Image.Image:
    """Query and catalogue photos side by side with the verified correspondences drawn."""
    a, b = working_image(query_img, max_side), working_image(cand_img, max_side)
    # Draw each photo at the size its points were measured in.
    if v.query_size is not None and a.size != v.query_size:
        a = query_img.resize(v.query_size, Image.Resampling.BILINEAR)
    if v.cand_size is not None and b.size != v.cand_size:
        b = cand_img.resize(v.cand_size, Image.Resampling.BILINEAR)
    h = max(a.height, b.height)
    canvas = Image.new("RGB", (a.width + b.width + 10, h), (255, 255, 255))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 10, 0))
    draw = ImageDraw.Draw(canvas)
    step = max(1, v.inliers // max_lines)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    for n, ((x1, y1), (x2, y2)) in enumerate(zip(v.query_xy[::step], v.cand_xy[::step])):
        colour = palette[n % len(palette)]
        x2 += a.width + 10
        draw.line([(x1, y1), (x2, y2)], fill=colour, width=1)
        draw.ellipse([x1 - 2, y1 - 2, x1 + 2, y1 + 2], outline=colour)
        draw.ellipse([x2 - 2, y2 - 2, x2 + 2, y2 + 2], outline=colour)
    draw.rectangle([0, 0, 260, 18], fill=(255, 255, 255))
    draw.text((4, 3), f"{v.inliers} verified correspondences", fill=(0, 0, 0))
    return canvas
