"""Runtime variants (runtime x precision), their per-backbone defaults, and the vector-agreement rule.

Light on purpose (no torch, no onnx): the index layer imports this to decide whether
an index built with one variant may be searched with another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Mapping, Protocol

import numpy as np

from artefact.embed.models import EFFICIENTNET_LITE0, OPEN_CLIP, LoadOptions, ModelDescription

TORCH, ONNX, OPENVINO = "torch", "onnx", "openvino"
RUNTIMES = (TORCH, ONNX, OPENVINO)
FP32, INT8 = "fp32", "int8"
PRECISIONS = (FP32, INT8)
AUTO = "auto"  # the measured default for the backbone (see DEFAULTS)

# Two variants of the same weights may share an index only when each one's vectors
# agree with PyTorch fp32 at least this well (lowest cosine over the probe photos).
# Measured (benchmarks/bench_runtime.py, EfficientNet-Lite0, real weights, 351 queries):
# fp32 exports agree to > 0.99999 and give PyTorch's R@1 exactly, whichever side made the
# index; OpenVINO int8 (probe cosine 0.87, mean 0.92) kept R@1 within 0.01 on an index of
# its own but lost 0.023-0.029 when its queries met a PyTorch-built index. 0.99 keeps any
# query-catalogue similarity within sqrt(2 - 2 * 0.99) = 0.14 of PyTorch's in the worst
# case and within ~0.01 typically.
AGREEMENT_MIN_COSINE = 0.99

# "auto" picks an int8 default only while its agreement, measured when it is made, stays
# at least this high (the measured ViT-B-32 dynamic int8: 0.985); otherwise it runs fp32
# in the same runtime. Real weights calibrate differently from the benchmark's.
AUTO_INT8_MIN_COSINE = 0.98

# Key of the runtime record inside ModelDescription.extra (and so in the index manifest).
EXTRA_KEY = "runtime"


@dataclass(frozen=True)
class Variant:
    """How the image tower runs: which runtime, at which numeric precision."""

    runtime: str = TORCH
    precision: str = FP32

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")

    @property
    def is_torch_fp32(self) -> bool:
        return self == TORCH_FP32

    def label(self) -> str:
        return f"{self.runtime}/{self.precision}"


TORCH_FP32 = Variant()

# The fastest variant that keeps recall, per backbone (benchmarks/bench_runtime.py; tables in
# benchmarks/README.md). EfficientNet-Lite0: OpenVINO fp32 (vectors and R@1 identical to
# PyTorch's; 2 threads idle: ~3x PyTorch per photo, 3.7-3.9x batched; ONNX Runtime fp32, the
# earlier default, 2.5-2.8x / 3.0x). Its compile at every process start (0.5-2 s idle) is paid
# once: the compiled model is cached beside the export (openvino_runtime.COMPILED_CACHE_DIR,
# ~0.1 s to load). Its int8 variants are faster but static int8 kept R@1 within 0.01 only when
# calibrated on the catalogue's own photos (-0.014 with the built-in photos a first use on an
# empty home has, ONNX Runtime's QDQ -0.07), and moved true-match similarities by ~0.03, which
# the built-in verdict calibration does not expect. ViT-B-32: ONNX Runtime dynamic int8
# (2.8x per photo idle, agreement 0.976-0.985; no CLIP weights here to measure R@1 directly).
DEFAULTS: dict[str, Variant] = {
    EFFICIENTNET_LITE0: Variant(OPENVINO, FP32),
    OPEN_CLIP: Variant(ONNX, INT8),
}


def default_threads(cpus: int | None = None, bulk: bool = False) -> int:
    """Threads for a compiled session when none are configured.

    Measured on 2 vCPUs (benchmarks/bench_runtime.py, bench_ingest.py): a search embeds one
    photo after decoding it, so both cores are free and two threads embed it in ~0.6x the
    time of one (EfficientNet-Lite0 in OpenVINO, idle: 12 vs 21 ms): searches get every core
    (up to 8). Bulk ingest decodes in worker processes at the same time, so the session
    there gets half the cores (one on a 2-core machine), leaving the rest to the decoders;
    earlier runs under load also showed one thread beating two when the other core was busy.
    """
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    if bulk:
        return 1 if n <= 2 else min(8, n // 2)
    return max(1, min(8, n))


class ImageSession(Protocol):
    """A compiled image tower: float32 NCHW batch in, (N, dim) features out."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def resolve(backend: str, runtime: str, precision: str) -> Variant:
    """Turn settings (possibly "auto") into a concrete variant for a backbone.

    "auto" runtime: the backbone's measured default. "auto" precision: the default's
    precision when the runtime is the default's, else fp32.
    """
    default = DEFAULTS.get(backend, TORCH_FP32)
    rt = default.runtime if runtime == AUTO else runtime.lower()
    if precision == AUTO:
        prec = default.precision if rt == default.runtime else FP32
    else:
        prec = precision.lower()
    return Variant(rt, prec)


@dataclass(frozen=True)
class RuntimeRecord:
    """What a description says about the runtime that made its vectors."""

    variant: Variant
    sha256: str | None  # checksum of the exported model file (None for PyTorch)
    agreement: float  # lowest cosine to PyTorch fp32 over the probe photos

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.variant.runtime, "precision": self.variant.precision, "sha256": self.sha256,
                "agreement_min_cosine": self.agreement}


def record_of(description: ModelDescription) -> RuntimeRecord:
    """The runtime record of a description; descriptions from before runtimes mean PyTorch fp32."""
    raw: Mapping[str, Any] | None = description.extra.get(EXTRA_KEY) if description.extra else None
    if not raw:
        return RuntimeRecord(TORCH_FP32, None, 1.0)
    return RuntimeRecord(
        Variant(str(raw.get("name", TORCH)), str(raw.get("precision", FP32))),
        raw.get("sha256"),
        float(raw.get("agreement_min_cosine", 0.0)),
    )


def options_for_index(existing: ModelDescription, options: LoadOptions) -> LoadOptions:
    """With runtime "auto", an index is searched by the variant that built it (like its model),
    except that any fp32 index gets the backbone's default runtime in fp32.

    fp32 exports agree with PyTorch to cosine > 0.99999 and give its R@1 exactly, so an index
    built by PyTorch (every index made before runtimes existed) or by an earlier default
    (ONNX Runtime for EfficientNet-Lite0) is searched by today's fastest fp32 runtime:
    upgrading never makes an index unsearchable, and it gets faster. An int8 index keeps its
    own variant: int8 vectors move enough that only their own kind should meet them.
    """
    if options.runtime != AUTO:
        return options
    if not existing.extra.get(EXTRA_KEY) or record_of(existing).variant.precision == FP32:
        runtime = DEFAULTS.get(existing.backend, TORCH_FP32).runtime
        return replace(options, runtime=runtime, precision=FP32)
    variant = record_of(existing).variant
    return replace(options, runtime=variant.runtime, precision=variant.precision)


def agreement_problem(existing: ModelDescription, loaded: ModelDescription,
                      threshold: float = AGREEMENT_MIN_COSINE) -> str | None:
    """Why vectors of `loaded` may not be mixed with an index built by `existing` (None: they may).

    Both descriptions must already have the same weights (`ModelDescription.identity`).
    Equal variants with equal exported files always agree; otherwise each side's
    measured agreement with PyTorch fp32 must reach `threshold`.
    """
    a, b = record_of(existing), record_of(loaded)
    if a.variant == b.variant and a.sha256 == b.sha256:
        return None
    low = [(name, r) for name, r in (("index", a), ("loaded", b)) if r.agreement < threshold]
    if not low:
        return None
    detail = "; ".join(
        f"the {name} variant {r.variant.label()} agrees with PyTorch fp32 only to cosine {r.agreement:.4f}"
        for name, r in low
    )
    return (
        f"this index was built with runtime {a.variant.label()} and the model loaded runs "
        f"{b.variant.label()}: {detail} (needed: {threshold}). Its vectors would not be comparable. "
        f"Search with the index's own runtime (--runtime {a.variant.runtime} --precision "
        f"{a.variant.precision}, or leave both unset), or rebuild the index with this one."
    )
