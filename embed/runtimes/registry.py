"""The runtime registry and `accelerate`: swap a loaded torch embedder's image tower for a faster runtime.

A new runtime is one module with a `build(embedder, precision, ctx)` function and one
line in `_REGISTRY` (or a call to `register_runtime`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from artefact.embed.embedder import Embedder, l2_normalise
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.models import LoadOptions, ModelDescription
from artefact.embed.preprocess import normalise_batch
from artefact.embed.runtimes.export import BuildContext, Pinned, export_folder
from artefact.embed.runtimes.variants import (
    AGREEMENT_MIN_COSINE,
    AUTO,
    AUTO_INT8_MIN_COSINE,
    FP32,
    INT8,
    EXTRA_KEY,
    ONNX,
    OPENVINO,
    TORCH,
    ImageSession,
    RuntimeRecord,
    Variant,
    default_threads,
    resolve,
)

log = logging.getLogger(__name__)

RuntimeBuilder = Callable[[Embedder, str, BuildContext], "tuple[ImageSession, Pinned]"]


@dataclass
class RuntimeEntry:
    """Where a runtime's builder lives and which packages it needs installed."""

    builder: str | RuntimeBuilder  # "module:function" (imported on first use) or a callable
    requires: tuple[str, ...]
    install_hint: str = "pip install 'artefact-search[fast]'"


_REGISTRY: dict[str, RuntimeEntry] = {
    ONNX: RuntimeEntry("artefact.embed.runtimes.onnx_runtime:build", ("onnxruntime", "onnx")),
    OPENVINO: RuntimeEntry("artefact.embed.runtimes.openvino_runtime:build", ("openvino", "onnx", "nncf")),
}


def register_runtime(name: str, entry: RuntimeEntry) -> None:
    """Add (or replace) a runtime."""
    _REGISTRY[name] = entry


def runtimes() -> tuple[str, ...]:
    return (TORCH, *_REGISTRY)


def missing_packages(name: str) -> list[str]:
    """Packages a runtime needs that are not installed (empty: it can run)."""
    return [p for p in _REGISTRY[name].requires if importlib.util.find_spec(p) is None]


def _builder(name: str) -> RuntimeBuilder:
    entry = _REGISTRY[name]
    if isinstance(entry.builder, str):
        module, _, attr = entry.builder.partition(":")
        entry.builder = getattr(importlib.import_module(module), attr)
    assert not isinstance(entry.builder, str)
    return entry.builder


class SessionEmbedder(Embedder):
    """An Embedder whose image tower runs in a compiled session (text, if any, stays in torch)."""

    def __init__(self, base: Embedder, session: ImageSession, description: ModelDescription) -> None:
        super().__init__(description, base._image_forward, base._text_forward, "cpu", base.batch_size, base.module)
        self.session = session

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed uint8 HxWx3 model inputs made by `artefact.embed.preprocess.prepare`."""
        if len(arrays) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [
            self.session.run(normalise_batch(list(arrays[start : start + self.batch_size]), self.preprocess))
            for start in range(0, len(arrays), self.batch_size)
        ]
        return l2_normalise(np.concatenate(out))


def describe(base: ModelDescription, variant: Variant, pinned: Pinned) -> ModelDescription:
    """The base description plus the runtime record (kept in the index manifest)."""
    record = RuntimeRecord(variant, pinned.sha256, pinned.agreement)
    return replace(base, extra={**base.extra, EXTRA_KEY: {**record.to_dict(), "files": pinned.meta.get("files", [])}})


def accelerate(embedder: Embedder, options: LoadOptions) -> Embedder:
    """Run `embedder`'s image tower in the runtime and precision `options` ask for.

    "auto" picks the backbone's measured default (`variants.DEFAULTS`). A runtime whose
    packages are missing falls back to PyTorch with a warning, so a laptop without
    them still works, only slower. The export is made on first use and kept in the
    model cache, pinned by checksum.

    Raises:
        ModelUnavailableError: an explicitly named runtime or precision cannot be built
            (an "auto" choice falls back to PyTorch instead).
    """
    runtime = options.runtime or TORCH
    automatic = runtime == AUTO
    try:
        variant = resolve(embedder.description.backend, runtime, options.precision)
    except ValueError as exc:
        raise ModelUnavailableError(str(exc)) from exc
    if variant.runtime == TORCH:
        if not variant.is_torch_fp32:
            raise ModelUnavailableError("PyTorch runs fp32 only here: int8 needs --runtime onnx or openvino")
        return embedder
    if embedder.device != "cpu":
        log.info("model runs on %s: keeping PyTorch (the exported runtimes here are CPU ones)", embedder.device)
        return embedder
    missing = missing_packages(variant.runtime)
    if missing:
        log.warning(
            "runtime %s needs %s, which %s not installed: running %s in PyTorch fp32 instead (slower). "
            "Install with: %s", variant.runtime, ", ".join(missing), "is" if len(missing) == 1 else "are",
            embedder.description.label(), _REGISTRY[variant.runtime].install_hint,
        )
        return embedder
    ctx = BuildContext(export_folder(options, embedder.description), options.cache_dir,
                       options.threads or default_threads(bulk=options.bulk), tuple(Path(p) for p in options.calibration_photos))
    try:
        session, pinned = _builder(variant.runtime)(embedder, variant.precision, ctx)
        if automatic and variant.precision == INT8 and pinned.agreement < AUTO_INT8_MIN_COSINE:
            log.warning("%s in %s agrees with PyTorch fp32 only to cosine %.4f (< %s): running %s/fp32 instead",
                        embedder.description.label(), variant.label(), pinned.agreement, AUTO_INT8_MIN_COSINE,
                        variant.runtime)
            variant = Variant(variant.runtime, FP32)
            session, pinned = _builder(variant.runtime)(embedder, variant.precision, ctx)
    except (ModelUnavailableError, OSError) as exc:
        if not automatic:
            raise ModelUnavailableError(f"cannot run {embedder.description.label()} in {variant.label()}: {exc}") from exc
        log.warning("cannot run %s in %s (%s): using PyTorch fp32", embedder.description.label(), variant.label(), exc)
        return embedder
    if automatic and pinned.agreement < AGREEMENT_MIN_COSINE and variant.precision == FP32:
        log.warning("%s in %s agrees with PyTorch fp32 only to cosine %.4f: the export is off, using PyTorch fp32",
                    embedder.description.label(), variant.label(), pinned.agreement)
        return embedder
    log.info("%s runs in %s (agreement with PyTorch fp32: cosine %.5f)",
             embedder.description.label(), variant.label(), pinned.agreement)
    return SessionEmbedder(embedder, session, describe(embedder.description, variant, pinned))
