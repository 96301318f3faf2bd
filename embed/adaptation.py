"""A learned linear adaptation of the offline backbone's vectors for turned 3D objects (the offline default).

Supervised whitening: the GeM vector is centred and the directions in which views of one object
vary most (pose, light) are scaled down, so that what differs between objects counts more. Fitted
by benchmarks/three_d/adaptation_study.py on 80 objects rendered for it (never the benchmark's),
kept at the 64 directions of largest within-object variance (data/turned3d.npz, 155 KB, written
by that script's --write-map). Measured through search with re-ranking: turned-3D R@1 with one
catalogue view 0.762 -> 0.854 (4 views 0.892 -> 0.942), the recall benchmark 0.932 -> 0.928
(one query of 264) with the same strong-match recall (benchmarks/README.md, "Turned 3D objects").

Provenance: a statistic of this model's vectors of procedural objects rendered with POV-Ray
(Debian povray; stone, wood and mineral textures from its include files, CC-BY-SA-3.0, used at
render time); no image or texture is contained in it, and the renders are not kept.

`tf_efficientnet_lite0+turned3d` is the offline default (`models.OFFLINE_FALLBACK_SPEC`); the plain
`tf_efficientnet_lite0` stays for the indexes built with it. The adapted model is another model
(its own identity and index), with a built-in verdict calibration of its own
(`index/calibration.BUILTIN_ADAPTED`, keyed by the adapted weights checksum).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artefact.embed.errors import ModelUnavailableError

DATA = Path(__file__).resolve().parent / "data"
ADAPTATIONS = {"turned3d": DATA / "turned3d.npz"}
SEPARATOR = "+"


@dataclass(frozen=True)
class Adaptation:
    """y = (x - mean) + ((x - mean) @ basis) * (scales - 1) @ basis.T, then L2-normalised by the embedder."""

    name: str
    mean: np.ndarray  # (dim,)
    basis: np.ndarray  # (dim, k), orthonormal columns
    scales: np.ndarray  # (k,), relative to the other directions' scale
    sha256: str

    def apply(self, x: np.ndarray) -> np.ndarray:
        centred = np.asarray(x, np.float32) - self.mean
        return centred + ((centred @ self.basis) * (self.scales - 1.0)) @ self.basis.T

    def torch_forward(self, device: str) -> Any:
        """The same map as a torch function (part of the image tower, so runtime exports carry it)."""
        import torch

        mean = torch.from_numpy(self.mean).to(device)
        basis = torch.from_numpy(self.basis).to(device)
        gain = torch.from_numpy(self.scales - 1.0).to(device)

        def forward(x: "torch.Tensor") -> "torch.Tensor":
            centred = x - mean
            return centred + ((centred @ basis) * gain) @ basis.T

        return forward


def split_name(model_name: str) -> tuple[str, str | None]:
    """'tf_efficientnet_lite0+turned3d' -> ('tf_efficientnet_lite0', 'turned3d')."""
    base, sep, adaptation = model_name.partition(SEPARATOR)
    return base, (adaptation if sep else None)


def load_adaptation(name: str, dim: int) -> Adaptation:
    path = ADAPTATIONS.get(name)
    if path is None:
        raise ModelUnavailableError(f"unknown adaptation {name!r} (known: {', '.join(sorted(ADAPTATIONS))})")
    try:
        raw = path.read_bytes()  # read once: the checksum and the arrays come from the same bytes
        with np.load(io.BytesIO(raw)) as f:
            mean, basis, scales = f["mean"], f["basis"], f["scales"]
    except (OSError, KeyError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read the adaptation file {path}: {exc}") from exc
    if mean.shape != (dim,) or basis.shape[0] != dim or basis.shape[1] != scales.shape[0]:
        raise ModelUnavailableError(f"adaptation {name!r} does not fit a {dim}-d model ({path})")
    return Adaptation(name, mean.astype(np.float32), basis.astype(np.float32), scales.astype(np.float32),
                      hashlib.sha256(raw).hexdigest())
