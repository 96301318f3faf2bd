"""Exported image towers in the model cache: the ONNX export of a torch model, pinned files, agreement.

Layout inside the model cache (`Home.models` / `LoadOptions.cache_dir`):

    exported/<backend>-<model>-<weights sha[:16]>/
        onnx-fp32.onnx             the torch image tower exported once (dynamic batch)
        export.pin.json            its pin: sha256, versions
        onnx-int8.onnx             quantized from onnx-fp32.onnx
        openvino-int8.xml, .bin    quantized by NNCF
        <runtime>-<precision>.pin.json   one pin per variant: its files' sha256 and its
                                         measured agreement with PyTorch fp32

Files count only with their pin and a matching checksum, so a half-written or
damaged file is made again instead of being trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from artefact.embed.embedder import Embedder
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.fileio import atomic_path, atomic_write_text, utc_iso
from artefact.embed.models import LoadOptions, ModelDescription, file_sha256
from artefact.embed.preprocess import normalise_batch
from artefact.embed.runtimes.probes import cosine_agreement, probe_arrays
from artefact.embed.runtimes.variants import ImageSession, Variant

log = logging.getLogger(__name__)

EXPORT_DIR = "exported"
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixels", "features"
PIN_SUFFIX = ".pin.json"
EXPORT_PIN = "export"
ONNX_FP32_FILE = "onnx-fp32.onnx"  # the torch export every variant starts from


@dataclass
class BuildContext:
    """What a runtime needs to build (or reuse) its compiled image tower."""

    folder: Path  # this model's folder under exported/
    cache_dir: Path | None  # for the checksum memo
    threads: int | None
    calibration_photos: Sequence[Path] = ()


@dataclass
class Pinned:
    """An exported model file (or files) and its pin."""

    files: list[Path]
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        return float(self.meta.get("agreement", {}).get("min_cosine", 0.0))


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "artefact-search" / "models"


def export_folder(options: LoadOptions, description: ModelDescription) -> Path:
    """The folder holding every exported variant of one set of weights."""
    cache = Path(options.cache_dir) if options.cache_dir else default_cache()
    raw = f"{description.backend}-{description.model_name}-{description.weights_sha256[:16]}"
    return cache / EXPORT_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


def files_sha256(files: Sequence[Path], cache_dir: Path | None) -> str:
    """sha256 of one file, or of the files' checksums in order when a model spans several."""
    if len(files) == 1:
        return file_sha256(files[0], cache_dir)
    h = hashlib.sha256()
    for f in files:
        h.update(file_sha256(f, cache_dir).encode())
    return h.hexdigest()


def pin_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{PIN_SUFFIX}"


def variant_pin(folder: Path, variant: Variant) -> Path:
    """Where a variant's pin lives (written by `ensure_variant`, read there and by `open_pinned`)."""
    return pin_path(folder, f"{variant.runtime}-{variant.precision}")


def read_pinned(pin: Path, files: Sequence[Path], cache_dir: Path | None) -> Pinned | None:
    """The pinned files, or None when a file or the pin is missing or the checksum differs."""
    if not pin.is_file() or not all(f.is_file() for f in files):
        return None
    try:
        meta = json.loads(pin.read_text())
    except (OSError, ValueError):
        return None
    sha = files_sha256(files, cache_dir)
    if meta.get("sha256") != sha:
        log.warning("%s does not match its pinned checksum: making it again", files[0])
        return None
    return Pinned(list(files), sha, meta)


def write_pin(pin: Path, files: Sequence[Path], cache_dir: Path | None, meta: dict[str, Any]) -> Pinned:
    sha = files_sha256(files, cache_dir)
    meta = {**meta, "sha256": sha, "files": [f.name for f in files], "made": utc_iso()}
    atomic_write_text(pin, json.dumps(meta, indent=1))
    return Pinned(list(files), sha, meta)


def versions() -> dict[str, str]:
    """Versions of the packages that shaped an export (recorded in its pin)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "onnx", "onnxruntime", "openvino", "nncf"):
        try:
            out[name] = version(name)  # from the installed metadata: nothing heavy is imported
        except PackageNotFoundError:
            continue
    return out


def export_onnx(embedder: Embedder, path: Path) -> None:
    """Export the embedder's torch image tower to ONNX with a dynamic batch axis.

    Raises:
        ModelUnavailableError: the torch model cannot be exported.
    """
    import torch

    if embedder.module is None:
        raise ModelUnavailableError(f"{embedder.description.label()} has no torch module to export")

    class ImageTower(torch.nn.Module):
        # Holding the model as a submodule makes its weights parameters of the graph, not constants.
        def __init__(self) -> None:
            super().__init__()
            self.model = embedder.module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return embedder._image_forward(x)

    size = embedder.preprocess.size
    example = torch.zeros(2, 3, size, size)
    started = time.perf_counter()
    # nn.MultiheadAttention's inference fast path is one fused op ONNX does not know.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        try:
            torch.onnx.export(
                ImageTower().eval().cpu(), (example,), tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types for an unsupported graph
            raise ModelUnavailableError(
                f"cannot export {embedder.description.label()} to ONNX: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    log.info("exported %s to %s in %.1f s", embedder.description.label(), path, time.perf_counter() - started)


def ensure_onnx_fp32(embedder: Embedder, ctx: BuildContext) -> Path:
    """The fp32 ONNX export of this model, made once and reused (every other variant starts from it)."""
    path = ctx.folder / ONNX_FP32_FILE
    pin = pin_path(ctx.folder, EXPORT_PIN)
    if read_pinned(pin, [path], ctx.cache_dir) is None:
        export_onnx(embedder, path)
        pin_export(embedder, pin, [path], ctx, session=None, info={"exported_from": "torch"})
    return path


def measure_agreement(embedder: Embedder, session: ImageSession) -> dict[str, Any]:
    """Cosine between PyTorch fp32 and a compiled tower on the fixed probe photos."""
    arrays = probe_arrays(embedder.preprocess)
    reference = embedder.embed_prepared(arrays)  # the torch model this export came from
    other = session.run(normalise_batch(arrays, embedder.preprocess))
    low, mean = cosine_agreement(reference, other)
    return {"min_cosine": round(low, 6), "mean_cosine": round(mean, 6), "probe_photos": len(arrays)}


def pin_export(embedder: Embedder, pin: Path, files: Sequence[Path], ctx: BuildContext,
               session: ImageSession | None, info: dict[str, Any]) -> Pinned:
    """Pin files just made: checksum, versions and, given a session, the measured agreement."""
    meta: dict[str, Any] = {"model": embedder.description.label(),
                            "weights_sha256": embedder.description.weights_sha256,
                            "versions": versions(), **info}
    if session is not None:
        meta["agreement"] = measure_agreement(embedder, session)
    return write_pin(pin, files, ctx.cache_dir, meta)


def ensure_variant(embedder: Embedder, variant: Variant, files: Sequence[Path], ctx: BuildContext,
                   make: Callable[[], dict[str, Any]], open_session: Callable[[], ImageSession]) -> tuple[ImageSession, Pinned]:
    """Reuse a variant's pinned files, or make them; a new variant is pinned with its measured agreement.

    Args:
        make: writes the variant's files and returns what to record about how (quantization...).
        open_session: compiles the files into a session.
    """
    pin = variant_pin(ctx.folder, variant)
    pinned = read_pinned(pin, files, ctx.cache_dir)
    if pinned is not None:
        return open_session(), pinned
    log.info("preparing %s %s (once; kept in %s)", embedder.description.label(), variant.label(), ctx.folder)
    info = make()
    session = open_session()
    pinned = pin_export(embedder, pin, files, ctx, session, {"variant": variant.label(), **info})
    log.info("%s %s agrees with PyTorch fp32 to cosine %.5f (lowest over %d probe photos)",
             embedder.description.label(), variant.label(), pinned.agreement,
             pinned.meta["agreement"]["probe_photos"])
    return session, pinned
