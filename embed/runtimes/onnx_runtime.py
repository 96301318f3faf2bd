"""ONNX Runtime: the exported image tower in fp32, or int8 (dynamic for transformers, static QDQ for convnets)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from artefact.embed.embedder import Embedder
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.fileio import atomic_path
from artefact.embed.models import OPEN_CLIP
from artefact.embed.runtimes.export import (
    INPUT_NAME,
    ONNX_FP32_FILE,
    OUTPUT_NAME,
    BuildContext,
    Pinned,
    ensure_onnx_fp32,
    ensure_variant,
)
from artefact.embed.runtimes.probes import calibration_batch
from artefact.embed.runtimes.variants import FP32, INT8, ONNX, ImageSession, Variant

log = logging.getLogger(__name__)

# Transformers spend their time in MatMuls whose weights quantize well with activations
# scaled per batch (dynamic). Convolutional nets need static (calibrated) activation
# scales: dynamic int8 made EfficientNet-Lite0 slower than fp32 (issue 13's table).
DYNAMIC_BACKENDS = frozenset({OPEN_CLIP})


class OnnxSession:
    """An onnxruntime CPU session over one exported image tower."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or 0  # 0: onnxruntime's own choice (physical cores)
        so.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: on a small shared machine spinning
        # threads steal the cores the decoder and the web server need (cf. OMP_WAIT_POLICY).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types for a bad file
            raise ModelUnavailableError(f"onnxruntime cannot load {path}: {exc}") from exc

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


def quantize_dynamic_int8(source: Path, target: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(target) as tmp:
        quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True)
    return {"quantization": "dynamic int8 (weights per channel, activations per batch)"}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a prepared batch, one photo at a time."""

    def __init__(self, batch: np.ndarray) -> None:
        self._items = iter([{INPUT_NAME: batch[i : i + 1]} for i in range(len(batch))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_static_int8(source: Path, target: Path, calibration: np.ndarray) -> dict[str, Any]:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=target.parent) as work, atomic_path(target) as tmp:
        pre = str(Path(work) / "pre.onnx")
        quant_pre_process(str(source), pre)
        # reduce_range: 7-bit weights, so u8 x s8 products cannot saturate the 16-bit
        # accumulators of AVX2 CPUs without VNNI (onnxruntime's quantization guide).
        quantize_static(pre, tmp, _Reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    return {"quantization": "static int8 QDQ (per-channel weights, calibrated activations)",
            "calibration_photos": int(len(calibration))}


def variant_files(folder: Path, precision: str) -> list[Path]:
    """The files the variant runs from (its pin vouches for them)."""
    if precision == FP32:
        return [folder / ONNX_FP32_FILE]
    if precision == INT8:
        return [folder / "onnx-int8.onnx"]
    raise ModelUnavailableError(f"onnx runtime offers fp32 and int8, not {precision!r}")


def open_session(files: list[Path], ctx: BuildContext) -> ImageSession:
    return OnnxSession(files[0], ctx.threads)


def build(embedder: Embedder, precision: str, ctx: BuildContext) -> tuple[ImageSession, Pinned]:
    """The ONNX Runtime session of this embedder at `precision`, exporting/quantizing on first use."""
    files = variant_files(ctx.folder, precision)
    fp32 = ensure_onnx_fp32(embedder, ctx)
    variant = Variant(ONNX, precision)
    if precision == FP32:
        return ensure_variant(embedder, variant, files, ctx, lambda: {}, lambda: open_session(files, ctx))

    def make() -> dict[str, Any]:
        if embedder.description.backend in DYNAMIC_BACKENDS:
            return quantize_dynamic_int8(fp32, files[0])
        return quantize_static_int8(fp32, files[0], calibration_batch(embedder.preprocess, ctx.calibration_photos))

    return ensure_variant(embedder, variant, files, ctx, make, lambda: open_session(files, ctx))
