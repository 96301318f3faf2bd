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
from artefact.embed.runtimes.export import BuildContext, Pinned, export_folder, read_pinned, variant_pin
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
    # A module with variant_files(folder, precision) and open_session(files, ctx): opens a pinned
    # variant without the torch model (`open_pinned`). None: this runtime always builds via torch.
    sessions: str | None = None


_REGISTRY: dict[str, RuntimeEntry] = {
    ONNX: RuntimeEntry("artefact.embed.runtimes.onnx_runtime:build", ("onnxruntime", "onnx"),
                       sessions="artefact.embed.runtimes.onnx_runtime"),
    OPENVINO: RuntimeEntry("artefact.embed.runtimes.openvino_runtime:build", ("openvino", "onnx", "nncf"),
                           sessions="artefact.embed.runtimes.openvino_runtime"),
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


def _torch_not_loaded(_: object) -> None:
    raise ModelUnavailableError("this embedder was opened from its pinned export: it has no torch model")


class SessionEmbedder(Embedder):
    """An Embedder whose image tower runs in a compiled session (text, if any, stays in torch).

    base None: opened straight from a pinned export (`open_pinned`), with no torch model behind it.
    """

    def __init__(self, base: Embedder | None, session: ImageSession, description: ModelDescription,
                 batch_size: int = 32) -> None:
        if base is None:
            super().__init__(description, _torch_not_loaded, None, "cpu", batch_size, None)
        else:
            super().__init__(description, base._image_forward, base._text_forward, "cpu", base.batch_size,
                             base.module)
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


def _build_context(options: LoadOptions, description: ModelDescription) -> BuildContext:
    """Where a model's variants live and how their sessions run, from the load options."""
    return BuildContext(export_folder(options, description), options.cache_dir,
                        options.threads or default_threads(bulk=options.bulk),
                        tuple(Path(p) for p in options.calibration_photos))


def _might_have_gpu() -> bool:
    """Whether a CUDA device may be present, asked without importing torch (which costs seconds)."""
    return Path("/dev/nvidiactl").exists() or Path("/dev/dxg").exists()


def open_pinned(description: ModelDescription, options: LoadOptions) -> Embedder | None:
    """An index's model opened straight from its pinned export, without loading PyTorch.

    A CLI search or ingest is a fresh process: importing PyTorch and timm and building the
    torch model takes ~9 s on a 2-core laptop, while a pinned export opens in ~0.1-0.5 s. This
    path runs only where the torch path would end in the very same session: an image-only
    model, on the CPU, a compiled runtime whose packages are installed, and a pin made from
    these weights whose files still match their checksums and whose agreement "auto" would
    accept. Anything else returns None and the caller loads the torch model as before (which
    also makes a missing export).
    """
    runtime = options.runtime
    if runtime in (None, TORCH) or description.has_text or options.device not in ("auto", "cpu"):
        return None
    if options.device == "auto" and _might_have_gpu():
        return None  # the torch path keeps PyTorch on a GPU
    try:
        variant = resolve(description.backend, runtime, options.precision)
    except ValueError:
        return None
    entry = _REGISTRY.get(variant.runtime)
    if variant.runtime == TORCH or entry is None or entry.sessions is None or missing_packages(variant.runtime):
        return None
    module = importlib.import_module(entry.sessions)
    ctx = _build_context(options, description)
    try:
        files = module.variant_files(ctx.folder, variant.precision)
    except ModelUnavailableError:
        return None
    pinned = read_pinned(variant_pin(ctx.folder, variant), files, ctx.cache_dir)
    if pinned is None or pinned.meta.get("weights_sha256") != description.weights_sha256:
        return None
    if variant.precision == FP32 and pinned.agreement < AGREEMENT_MIN_COSINE:
        return None  # an export that drifts: the torch path decides what to run instead, and says why
    if runtime == AUTO and variant.precision == INT8 and pinned.agreement < AUTO_INT8_MIN_COSINE:
        return None
    try:
        session = module.open_session(files, ctx)
    except (ModelUnavailableError, OSError) as exc:
        log.info("cannot open the pinned %s (%s): loading the torch model", variant.label(), exc)
        return None
    log.info("%s runs in %s from its pinned export (agreement with PyTorch fp32: cosine %.5f)",
             description.label(), variant.label(), pinned.agreement)
    return SessionEmbedder(None, session, describe(description, variant, pinned), options.batch_size)


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
    ctx = _build_context(options, embedder.description)
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
