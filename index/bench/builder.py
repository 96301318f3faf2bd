"""Build a recall benchmark from a catalogue: checkpoint-like query photos, real second photos, distractors.

Output folder layout (everything a query list needs, paths relative to it):

    queries.csv                    query,expected_id,condition,severity
    queries/<condition>/<sev>/...  transformed catalogue photos (JPEG)
    distractors/...                photos of objects NOT in the catalogue (also transformed)
    pairs/catalogue.csv + images/  first photos of real photo pairs: index these too
    pairs/queries/...              their second photos (condition `second_photo`)
    benchmark.json                 what was built, from what, with which seed

The catalogue photos themselves are read from a manifest + images root (the
same format `artefact index add` takes), so any catalogue can be used.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from artefact.embed.fileio import atomic_write_text
from artefact.embed.images import load_image
from artefact.index.bench import conditions as C
from artefact.index.bench.queries import Query, read_queries, write_queries
from artefact.index.ingest import ingest_manifest
from artefact.index.manifest import read_manifest, resolve_images

log = logging.getLogger(__name__)

# A checkpoint phone photo has far more pixels on the object than a catalogue
# thumbnail: render sources at least this large before degrading them.
WORK_LONG_SIDE = 640

# Default folder of real photo pairs: Debian's opencv-doc package (`BenchmarkSpec.pairs_dir`, `--pairs`).
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# (first photo -> catalogue, second photo -> query): real second views of the same object/scene.
OPENCV_PAIRS = (
    ("box", "box.png", "box_in_scene.png", "object alone vs in a cluttered scene"),
    ("graf", "graf1.png", "graf3.png", "graffiti wall, viewpoint change ~40 degrees"),
    ("aero", "aero1.jpg", "aero3.jpg", "aerial photo pair"),
    ("leuven", "leuvenA.jpg", "leuvenB.jpg", "building facade, exposure change"),
    ("suzanne", "Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg", "rendered object, second viewpoint"),
)
PAIRS_LICENCE = (
    "OpenCV samples/data as shipped by Debian opencv-doc: Apache-2.0 AND BSD-3-Clause "
    "(Files: * in /usr/share/doc/opencv-doc/copyright). Not committed to this repository."
)
# scikit-image photos that are not in the bundled sample catalogue (all CC0 or public domain).
SKIMAGE_DISTRACTORS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel", "retina")


@dataclass
class BenchmarkSpec:
    """What to build. `objects_per_condition` None = every object in every condition."""

    conditions: Sequence[str] = tuple(C.CONDITIONS)
    severities: Sequence[int] = C.SEVERITIES
    objects_per_condition: int | None = None
    seed: int = 0
    distractor_dir: Path | None = None
    skimage_distractors: bool = True
    distractor_conditions: int = 2  # transformed copies of each distractor photo, besides the plain one
    pairs_dir: Path | None = None  # None: OPENCV_DATA if present (skipped when not); a named folder must exist
    use_pairs: bool = True
    jpeg_quality: int = 90


@dataclass
class Benchmark:
    """What was built: the query list, the extra catalogue to index, counts."""

    root: Path
    queries_path: Path
    extra_manifests: list[tuple[Path, Path]] = field(default_factory=list)  # (manifest, images root)
    counts: dict[str, int] = field(default_factory=dict)

    def queries(self) -> list[Query]:
        return read_queries(self.queries_path)


def _working_copy(img: Image.Image) -> Image.Image:
    w, h = img.size
    if max(w, h) < WORK_LONG_SIDE:
        s = WORK_LONG_SIDE / max(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    return img


def _save(img: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=quality)


def catalogue_sources(manifest: Path, images_root: Path) -> list[tuple[str, Path]]:
    """(object id, its first usable photo) for every object of a manifest."""
    out = []
    for row in read_manifest(manifest):
        if row.record is None:
            continue
        for _ref, path, problem in resolve_images(row.images, images_root):
            if path is not None and problem is None:
                out.append((row.record.object_id, path))
                break
    return out


def _distractor_sources(spec: BenchmarkSpec) -> list[tuple[str, Image.Image]]:
    out: list[tuple[str, Image.Image]] = []
    if spec.distractor_dir is not None:
        for p in sorted(Path(spec.distractor_dir).rglob("*")):
            if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".heic", ".webp", ".tif", ".tiff"):
                out.append((p.stem, load_image(p)))
    if spec.skimage_distractors:
        out += _skimage_photos()
    return out


def _skimage_photos() -> list[tuple[str, Image.Image]]:
    """scikit-image's bundled photos (a test extra, so imported only here; none when it is missing)."""
    try:
        import skimage.data as skd
    except ImportError:
        log.warning("scikit-image is not installed: no built-in distractor photos "
                    "(install scikit-image, or turn them off with --no-skimage-distractors)")
        return []
    out = []
    for name in SKIMAGE_DISTRACTORS:
        try:
            a = np.asarray(getattr(skd, name)())
        except Exception as exc:  # noqa: BLE001 - some photos need a download: skip those
            log.info("skimage %s unavailable: %s", name, exc)
            continue
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        out.append((f"skimage-{name}", Image.fromarray(np.ascontiguousarray(a[..., :3]).astype(np.uint8), "RGB")))
    return out


def build_benchmark(out: Path, manifest: Path, images_root: Path, spec: BenchmarkSpec = BenchmarkSpec()) -> Benchmark:
    """Write query photos and a query list for the catalogue `manifest` + `images_root` into `out`.

    Deterministic: the same spec (seed included) and sources give the same files.

    Raises:
        ValueError: an unknown condition or severity.
        ManifestError: an unreadable manifest.
    """
    out = Path(out)
    unknown = [c for c in spec.conditions if c not in C.CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(C.CONDITIONS)}")
    bad = [s for s in spec.severities if s not in C.SEVERITIES]
    if bad:
        raise ValueError(f"severities must be in {C.SEVERITIES}")
    out.mkdir(parents=True, exist_ok=True)
    sources = catalogue_sources(Path(manifest), Path(images_root))
    if not sources:
        raise ValueError(f"no usable catalogue photos in {manifest}")
    rng = np.random.default_rng(spec.seed)
    queries: list[Query] = []
    cache: dict[str, Image.Image] = {}

    def source(object_id: str, path: Path) -> Image.Image:
        if object_id not in cache:
            cache[object_id] = _working_copy(load_image(path))
        return cache[object_id]

    for name in spec.conditions:
        for sev in spec.severities:
            chosen = sources
            if spec.objects_per_condition is not None and spec.objects_per_condition < len(sources):
                idx = np.sort(rng.choice(len(sources), spec.objects_per_condition, replace=False))
                chosen = [sources[int(i)] for i in idx]
            for object_id, path in chosen:
                img = C.apply(name, source(object_id, path), sev, seed=spec.seed, key=object_id)
                rel = Path("queries") / name / str(sev) / f"{object_id}.jpg"
                _save(img, out / rel, spec.jpeg_quality)
                queries.append(Query([rel], object_id, name, sev))

    n_distractors = 0
    for key, img in _distractor_sources(spec):
        img = _working_copy(img)
        rel = Path("distractors") / "plain" / f"{key}.jpg"
        _save(img, out / rel, spec.jpeg_quality)
        queries.append(Query([rel], None, "plain", 0))
        n_distractors += 1
        drng = C.rng_for(spec.seed, "distractor", 0, key)
        names = list(spec.conditions)
        for name in drng.choice(names, size=min(spec.distractor_conditions, len(names)), replace=False) if names else []:
            sev = int(drng.choice(list(spec.severities)))
            rel = Path("distractors") / str(name) / f"{key}-{sev}.jpg"
            _save(C.apply(str(name), img, sev, seed=spec.seed, key=key), out / rel, spec.jpeg_quality)
            queries.append(Query([rel], None, str(name), sev))
            n_distractors += 1

    extra: list[tuple[Path, Path]] = []
    n_pairs = 0
    pairs_dir = spec.pairs_dir if spec.pairs_dir is not None else OPENCV_DATA
    if spec.use_pairs and Path(pairs_dir).is_dir():
        n_pairs, manifest_path = _write_pairs(out, Path(pairs_dir), queries)
        if n_pairs:
            extra.append((manifest_path, out / "pairs" / "images"))
    elif spec.use_pairs and spec.pairs_dir is not None:
        raise ValueError(f"pairs folder {spec.pairs_dir} not found")

    queries_path = out / "queries.csv"
    write_queries(queries_path, queries)
    counts = {"queries": len(queries), "catalogue_objects": len(sources), "distractors": n_distractors, "pairs": n_pairs}
    atomic_write_text(out / "benchmark.json", json.dumps({
        "manifest": str(manifest), "images_root": str(images_root), "seed": spec.seed,
        "conditions": list(spec.conditions), "severities": list(spec.severities),
        "objects_per_condition": spec.objects_per_condition, "counts": counts,
        "extra_manifests": [[str(m), str(r)] for m, r in extra],
        "pairs_licence": PAIRS_LICENCE if n_pairs else None,
    }, indent=1))
    return Benchmark(out, queries_path, extra, counts)


def _write_pairs(out: Path, pairs_dir: Path, queries: list[Query]) -> tuple[int, Path]:
    """Copy real photo pairs: first photo into an extra catalogue, second photo as a query."""
    manifest_path = out / "pairs" / "catalogue.csv"
    rows = []
    for key, first, second, what in OPENCV_PAIRS:
        a, b = pairs_dir / first, pairs_dir / second
        if not (a.is_file() and b.is_file()):
            continue
        object_id = f"PAIR-{key.upper()}"
        img_rel = Path(object_id) / first
        (out / "pairs" / "images" / object_id).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a, out / "pairs" / "images" / img_rel)
        q_rel = Path("pairs") / "queries" / second
        q_rel_path = out / q_rel
        q_rel_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(b, q_rel_path)
        queries.append(Query([q_rel], object_id, "second_photo", 0))
        rows.append({"id": object_id, "images": str(img_rel), "object_type": "photo pair",
                     "title": f"OpenCV sample {first} ({what})", "status": "stolen",
                     "description": "BENCHMARK ONLY - not a real report", "image_licence": PAIRS_LICENCE})
    if rows:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        with manifest_path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return len(rows), manifest_path


def index_benchmark(library: Any, embedder: Any, manifest: Path, images_root: Path, benchmark: Benchmark,
                    *, workers: int | None = 0, progress: bool = False) -> None:
    """Index the catalogue plus the benchmark's extra objects (real pairs) into `library`."""
    library.bind_model(embedder.description)
    for m, root in [(Path(manifest), Path(images_root)), *benchmark.extra_manifests]:
        ingest_manifest(library, embedder, m, root, workers=workers, progress=progress)


def load_benchmark(root: Path) -> Benchmark:
    """Open a folder written by `build_benchmark`."""
    root = Path(root)
    meta: dict[str, Any] = json.loads((root / "benchmark.json").read_text())
    return Benchmark(root, root / "queries.csv", [(Path(m), Path(r)) for m, r in meta.get("extra_manifests", [])],
                     meta.get("counts", {}))
