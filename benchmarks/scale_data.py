"""Synthetic catalogues for the scale benchmark: vectors clustered like real embeddings, realistic fields.

Real EfficientNet-Lite0 embeddings of generated photos (augmented variants of the
offline source photos, see _common.py) give the shape: their mean, the spread of
photo "sources" (objects) around it and the spread of variants of one source
(photos of one object). Synthetic objects are random mixes of real object offsets;
their photos add real within-object residuals plus a little isotropic noise, then
ReLU and L2 normalisation as the backbone's GeM output has. Everything is seeded.

The two noise scales were set by comparing with the real embeddings (480 photos of 40
sources): share of variance in the top 10/100/300 principal components 0.46/0.83/0.95
synthetic vs 0.52/0.88/0.98 real; median similarity of two photos of one object 0.85 vs
0.81. (More isotropic noise makes the set far harder for any compressed index than real
embeddings are: at 0.012 the top-100 share falls to 0.70.)
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

STATUSES = (("stolen", 0.58), ("looted", 0.2), ("missing", 0.15), ("recovered", 0.07))
OBJECT_TYPES = ("coin", "painting", "statue", "icon", "manuscript", "vase", "jewellery", "mosaic", "relief",
                "fresco", "tapestry", "print", "book", "weapon", "textile", "mask", "seal", "tablet", "lamp",
                "figurine", "amphora", "sarcophagus", "altarpiece", "drawing", "furniture", "clock", "ceramic",
                "glass", "reliquary", "bell", "medal", "map", "photograph", "instrument", "sculpture", "stele")
COUNTRIES = ("IT", "FR", "DE", "ES", "GR", "IQ", "SY", "EG", "TR", "PE", "MX", "CN", "IN", "RU", "UA", "PL",
             "GB", "NL", "BE", "AT", "CH", "PT", "RO", "BG", "HR", "RS", "CY", "LB", "JO", "LY", "TN", "MA",
             "DZ", "ML", "NG", "ET", "AF", "PK", "IR", "YE", "KH", "TH", "VN", "ID", "GT", "HN", "CO", "BO",
             "EC", "AR", "CL", "BR", "US", "CA", "JP", "KR", "MN", "UZ", "GE", "AM")
SOURCES = (("interpol", 0.35), ("carabinieri", 0.4), ("bka", 0.1), ("ocbc", 0.1), ("fbi", 0.05))


def _zipf(n: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


@dataclass
class Shape:
    """What the real embeddings say: mean, object offsets, within-object residuals."""

    mean: np.ndarray
    offsets: np.ndarray  # (sources, d)
    residuals: np.ndarray  # (photos, d)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def real_embeddings(cache: Path, per_source: int = 12, long_side: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of augmented photos of each offline source photo (cached: minutes on 2 cores)."""
    if cache.is_file():
        d = np.load(cache)
        return d["x"], d["labels"]
    from _common import load_model, make_photo, source_photos

    from artefact.embed.preprocess import load_photo

    src = source_photos()
    model = load_model("efficientnet-lite0", batch_size=16)
    arrays, labels = [], []
    for s, photo in enumerate(src):
        for v in range(per_source):
            buf = io.BytesIO()
            make_photo(photo, long_side, seed=s * 100 + v).save(buf, "JPEG", quality=90)
            arrays.append(load_photo(buf.getvalue(), model.preprocess)[1])
            labels.append(s)
    t0 = time.perf_counter()
    x = model.embed_prepared(arrays).astype(np.float32)
    print(f"embedded {len(x)} generated photos in {time.perf_counter() - t0:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, labels=np.asarray(labels))
    return x, np.asarray(labels)


def shape_of(x: np.ndarray, labels: np.ndarray) -> Shape:
    mean = x.mean(axis=0)
    centres = np.stack([x[labels == s].mean(axis=0) for s in np.unique(labels)])
    return Shape(mean, centres - mean, x - centres[np.searchsorted(np.unique(labels), labels)])


@dataclass
class Chunk:
    """A slice of a synthetic catalogue: one row per photo."""

    object_index: np.ndarray  # which synthetic object each photo belongs to
    vectors: np.ndarray  # (n, d) float32, unit norm
    first_object: int  # objects [first_object, first_object + n_objects) start in this chunk
    n_objects: int


def photos_per_object(rng: np.random.Generator, n: int) -> np.ndarray:
    """1-6 photos per object, most with 2-3 (mean about 2.8)."""
    return rng.choice(np.arange(1, 7), size=n, p=[0.15, 0.25, 0.25, 0.15, 0.12, 0.08])


def synthetic_photos(shape: Shape, n_photos: int, seed: int = 0, chunk_objects: int = 5_000,
                     photo_noise: float = 1.0, iso_noise: float = 0.004, skip_objects: int = 0) -> Iterator[Chunk]:
    """Yield chunks of a catalogue of about n_photos photos (exactly n_photos in total).

    Computed in float32 in chunks of a few thousand objects (~14k photos, ~70 MB a matrix),
    so that a million photos are made in bounded memory. Chunks wholly before
    `skip_objects` are not computed (a resumed build), only counted.
    """
    d = shape.dim
    mean, offsets, residuals = (a.astype(np.float32) for a in (shape.mean, shape.offsets, shape.residuals))
    made = 0
    obj = 0
    block = 0
    while made < n_photos:
        rng = np.random.default_rng([seed, block])
        block += 1
        counts = photos_per_object(rng, chunk_objects)
        counts = counts[np.cumsum(counts) <= n_photos - made] if counts.sum() > n_photos - made else counts
        if len(counts) == 0:
            counts = np.asarray([n_photos - made])
        n_obj = len(counts)
        if obj + n_obj <= skip_objects:
            made += int(counts.sum())
            obj += n_obj
            continue
        # An object = the mean + a mix of 2-3 real object offsets + part of a real residual.
        picks = rng.integers(0, len(shape.offsets), size=(n_obj, 3))
        weights = rng.normal(0.55, 0.25, size=(n_obj, 3)) * (rng.random((n_obj, 3)) < [1, 1, 0.5])
        centres = mean + np.einsum("oj,ojd->od", weights.astype(np.float32), offsets[picks])
        centres += 0.6 * residuals[rng.integers(0, len(residuals), n_obj)]
        owner = np.repeat(np.arange(n_obj), counts)
        n = len(owner)
        # A photo = its object + a blend of two real within-object residuals + isotropic noise.
        ia = rng.integers(0, len(residuals), n)
        ib = rng.integers(0, len(residuals), n)
        theta = rng.uniform(0, np.pi / 2, size=(n, 1)).astype(np.float32)
        x = centres[owner]
        x += photo_noise * np.cos(theta) * residuals[ia]
        x += photo_noise * np.sin(theta) * residuals[ib]
        x += rng.normal(0, iso_noise, size=(n, d)).astype(np.float32)
        np.maximum(x, 0, out=x)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        yield Chunk(owner + obj, x, obj, n_obj)
        made += n
        obj += n_obj


def object_fields(n_objects: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Status, object type, country and source per object (skewed like real inventories)."""
    rng = np.random.default_rng([seed, 999])
    return {
        "status": rng.choice([s for s, _ in STATUSES], size=n_objects, p=[p for _, p in STATUSES]),
        "object_type": rng.choice(OBJECT_TYPES, size=n_objects, p=_zipf(len(OBJECT_TYPES))),
        "country": rng.choice(COUNTRIES, size=n_objects, p=_zipf(len(COUNTRIES))),
        "source": rng.choice([s for s, _ in SOURCES], size=n_objects, p=[p for _, p in SOURCES]),
    }
