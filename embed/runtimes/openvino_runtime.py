"""OpenVINO: the exported image tower compiled for the CPU in fp32, or int8 quantized by NNCF."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from artefact.embed.embedder import Embedder
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.models import OPEN_CLIP
from artefact.embed.runtimes.export import ONNX_FP32_FILE, BuildContext, Pinned, ensure_onnx_fp32, ensure_variant
from artefact.embed.runtimes.probes import calibration_batch
from artefact.embed.runtimes.variants import FP32, INT8, OPENVINO, ImageSession, Variant

log = logging.getLogger(__name__)

TRANSFORMER_BACKENDS = frozenset({OPEN_CLIP})

# OpenVINO's compiled-model cache, inside the model's export folder. Compiling EfficientNet-Lite0
# takes 0.5-0.9 s idle (2-8 s under load) at every process start, which each CLI search would
# pay; loading the cached blob takes ~0.1 s. The blob is made for this CPU and OpenVINO version
# (OpenVINO keys it on both), so bundles leave it behind (index/bundle/model_files.py).
COMPILED_CACHE_DIR = "openvino-compiled"


class OpenVinoSession:
    """A model compiled by OpenVINO for the CPU."""

    def __init__(self, path: Path, threads: int | None, cache: Path | None = None) -> None:
        # f32 stated explicitly: on CPUs with bf16 units OpenVINO would otherwise silently
        # run an fp32 model in bf16, and the vectors would no longer be the measured ones.
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        usable = cache if cache is not None and _writable_folder(cache) else None
        try:
            self.compiled = _compile(path, config, usable)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            if usable is None:
                raise ModelUnavailableError(f"OpenVINO cannot compile {path}: {exc}") from exc
            # A damaged or foreign cache must not stop a search: compile afresh without it.
            log.warning("OpenVINO could not use its compiled-model cache %s (%s): compiling without it", usable, exc)
            try:
                self.compiled = _compile(path, config, None)
            except Exception as again:
                raise ModelUnavailableError(f"OpenVINO cannot compile {path}: {again}") from again
        self._request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self._request.infer([np.ascontiguousarray(batch, dtype=np.float32)])
        return np.asarray(out[self.compiled.output(0)], dtype=np.float32).copy()


def _compile(path: Path, config: dict[str, Any], cache: Path | None) -> Any:
    import openvino as ov

    core = ov.Core()
    if cache is not None:
        core.set_property({"CACHE_DIR": str(cache)})
    return core.compile_model(str(path), "CPU", config)


def _writable_folder(folder: Path) -> bool:
    """Make the cache folder if it can be made; a read-only home just compiles every time."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def quantize_int8(source: Path, xml: Path, calibration: np.ndarray, transformer: bool) -> dict[str, Any]:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(source))
    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "subset_size": int(len(calibration))}
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    quantized = nncf.quantize(model, nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
                              **kwargs)
    with tempfile.TemporaryDirectory(dir=xml.parent) as work:
        tmp_xml = Path(work) / xml.name
        ov.save_model(quantized, str(tmp_xml), compress_to_fp16=False)
        # The weights first, then the graph that names them: a reader never sees a new
        # graph over old weights, and the pin (written after) vouches for the pair.
        os.replace(tmp_xml.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)
    return {"quantization": "NNCF post-training int8 (mixed preset, calibrated activations)",
            "calibration_photos": int(len(calibration))}


def variant_files(folder: Path, precision: str) -> list[Path]:
    """The files the variant runs from (its pin vouches for them)."""
    if precision == FP32:
        # OpenVINO reads the ONNX file itself: the fp32 variant needs no file of its own.
        return [folder / ONNX_FP32_FILE]
    if precision == INT8:
        xml = folder / "openvino-int8.xml"
        return [xml, xml.with_suffix(".bin")]
    raise ModelUnavailableError(f"openvino runtime offers fp32 and int8, not {precision!r}")


def open_session(files: list[Path], ctx: BuildContext) -> ImageSession:
    return OpenVinoSession(files[0], ctx.threads, ctx.folder / COMPILED_CACHE_DIR)


def build(embedder: Embedder, precision: str, ctx: BuildContext) -> tuple[ImageSession, Pinned]:
    """The OpenVINO compiled tower of this embedder at `precision`, made on first use."""
    files = variant_files(ctx.folder, precision)
    fp32 = ensure_onnx_fp32(embedder, ctx)
    if precision == FP32:
        return ensure_variant(embedder, Variant(OPENVINO, FP32), files, ctx, lambda: {},
                              lambda: open_session(files, ctx))

    def make() -> dict[str, Any]:
        batch = calibration_batch(embedder.preprocess, ctx.calibration_photos)
        return quantize_int8(fp32, files[0], batch, embedder.description.backend in TRANSFORMER_BACKENDS)

    return ensure_variant(embedder, Variant(OPENVINO, INT8), files, ctx, make, lambda: open_session(files, ctx))
