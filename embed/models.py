"""Model choice and description (what was asked for, what was loaded); loading is in `loader`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from artefact.embed.fileio import atomic_write_text

log = logging.getLogger(__name__)

OPEN_CLIP = "open_clip"
EFFICIENTNET_LITE0 = "efficientnet_lite0"

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
RANDOM_INIT = "random-init"
DEFAULT_TAG = "default"  # resolved at load to the model's preferred open_clip tag


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for. `pretrained` is an open_clip tag, a checkpoint
    file, or None for seeded random weights (tests and speed benchmarks)."""

    backend: str = OPEN_CLIP
    model_name: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED

    def label(self) -> str:
        return f"{self.backend}:{self.model_name}/{self.pretrained or RANDOM_INIT}"


DEFAULT_SPEC = ModelSpec()
# The offline backbone as ImageNet made it; indexes built before issue 14 keep it.
PLAIN_OFFLINE_SPEC = ModelSpec(EFFICIENTNET_LITE0, "tf_efficientnet_lite0", "imagenet")
# The offline default: the same weights with the shipped turned3d map (embed/adaptation.py). It ranks
# turned 3D objects better (R@1 0.854 vs 0.762 with one catalogue view) at no cost to flat objects or
# to false alarms (benchmarks/README.md, "Turned 3D objects").
OFFLINE_FALLBACK_SPEC = ModelSpec(EFFICIENTNET_LITE0, "tf_efficientnet_lite0+turned3d", "imagenet")


@dataclass(frozen=True)
class ModelDescription:
    """What was actually loaded; stored in the index manifest."""

    backend: str
    model_name: str
    pretrained: str | None
    dim: int
    preprocess: dict[str, Any]
    weights_sha256: str
    has_text: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelDescription":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def spec(self) -> ModelSpec:
        return ModelSpec(self.backend, self.model_name, self.pretrained)

    def identity(self) -> tuple[str, str, str, int]:
        """Two descriptions with equal identity produce the same vectors."""
        return (self.backend, self.model_name, self.weights_sha256, self.dim)

    def label(self) -> str:
        return f"{self.backend}:{self.model_name}/{self.pretrained or RANDOM_INIT}"


@dataclass(frozen=True)
class LoadOptions:
    """Where weights live and how inference runs."""

    cache_dir: Path | None = None
    allow_download: bool = True
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 32
    config_dir: Path | None = None  # extra open_clip model configs (JSON files)
    # Image-tower runtime (artefact.embed.runtimes): None = PyTorch as the backend loads it;
    # "auto" = the backbone's measured fastest variant that keeps recall; or onnx / openvino / torch.
    runtime: str | None = None
    precision: str = "auto"  # fp32 | int8 | auto
    calibration_photos: tuple[Path, ...] = ()  # catalogue photos for static int8 calibration
    bulk: bool = False  # embedding beside decode workers (ingest): compiled runtimes take fewer threads


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a weights file, memoised by (path, size, mtime) in cache_dir."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{int(st.st_mtime_ns)}"
    memo_path = cache_dir / "checksums.json" if cache_dir else None
    memo: dict[str, str] = {}
    if memo_path and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_path:
        memo[key] = digest
        try:
            atomic_write_text(memo_path, json.dumps(memo, indent=1))
        except OSError as exc:
            log.debug("could not memoise checksum: %s", exc)
    return digest


def host_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    """A quick check so an offline laptop fails in seconds, not after a minute of retries."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def set_threads(threads: int | None) -> None:
    import torch

    n = threads or os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
