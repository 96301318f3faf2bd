"""The one front door for models: a registry of backends by name, and the rules for which model to load."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Callable

from artefact.embed.errors import ModelUnavailableError
from artefact.embed.runtimes.registry import accelerate, open_pinned
from artefact.embed.runtimes.variants import options_for_index
from artefact.embed.models import (
    DEFAULT_SPEC,
    EFFICIENTNET_LITE0,
    OFFLINE_FALLBACK_SPEC,
    OPEN_CLIP,
    LoadOptions,
    ModelDescription,
    ModelSpec,
)

if TYPE_CHECKING:
    from artefact.embed.embedder import Embedder

log = logging.getLogger(__name__)

BackendLoader = Callable[[ModelSpec, LoadOptions], "Embedder"]

# Backend name -> "module:function". Modules are imported on first use so that choosing
# one backend never imports another's heavy dependencies. A new backend is one module
# plus one line here (or a call to `register_backend`).
_REGISTRY: dict[str, str | BackendLoader] = {
    OPEN_CLIP: "artefact.embed.clip_backend:load_open_clip",
    EFFICIENTNET_LITE0: "artefact.embed.efficientnet_backend:load_efficientnet_lite0",
}


def register_backend(name: str, loader: str | BackendLoader) -> None:
    """Add (or replace) a backend: `loader` is a callable or a "module:function" path."""
    _REGISTRY[name] = loader


def backends() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def _resolve(name: str) -> BackendLoader:
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise ModelUnavailableError(
            f"unknown model backend {name!r}; choose one of {', '.join(backends())}"
        ) from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = entry
    return entry


def load_embedder(spec: ModelSpec, options: LoadOptions = LoadOptions()) -> "Embedder":
    """Load exactly the model asked for.

    Raises:
        ModelUnavailableError: unknown model, or weights that cannot be had; the
            message says which file or setting provides them.
    """
    embedder = _resolve(spec.backend)(spec, options)
    if options.runtime is None:
        return embedder
    return accelerate(embedder, options)


def load_embedder_with_fallback(
    spec: ModelSpec | None, options: LoadOptions = LoadOptions()
) -> "Embedder":
    """Load `spec`, or the default CLIP model when spec is None.

    Only the default may fall back: when its weights cannot be had, the offline
    EfficientNet-Lite0 backbone is used with a loud warning. An explicit choice
    never silently becomes another model.
    """
    if spec is not None:
        return load_embedder(spec, options)
    try:
        return load_embedder(DEFAULT_SPEC, options)
    except ModelUnavailableError as exc:
        log.warning(
            "\n*** DEFAULT CLIP MODEL UNAVAILABLE ***\n%s\n"
            "*** Falling back to the offline backbone %s (ImageNet EfficientNet-Lite0 adapted to turned views, "
            "image search only, no text search). Indexes built now use that model. ***",
            exc,
            OFFLINE_FALLBACK_SPEC.label(),
        )
        return load_embedder(OFFLINE_FALLBACK_SPEC, options)


def embedder_for(
    existing: ModelDescription | None, explicit: ModelSpec | None, options: LoadOptions = LoadOptions()
) -> "Embedder":
    """The model to use with an index: its own model unless another is named.

    Args:
        existing: the model the index was built with (None for a new index).
        explicit: the model the user named (None: the index's own, or the default).
        options: where weights live and how inference runs.

    The caller still checks the loaded description against the index
    (`Library.check_model`), so a named model that differs is refused there.
    """
    if existing is not None:
        options = options_for_index(existing, options)  # runtime "auto": the variant that built the index
    if existing is not None and (explicit is None or explicit == existing.spec()):
        # The index's own model: straight from its pinned export when there is one (no PyTorch
        # import, seconds faster per command), else loaded, and exported on first use.
        return open_pinned(existing, options) or load_embedder(existing.spec(), options)
    return load_embedder_with_fallback(explicit, options)
