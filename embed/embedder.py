"""The Embedder: batched, L2-normalised float32 vectors from photos (and text where the model has a text tower)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np

from artefact.embed.errors import ModelUnavailableError
from artefact.embed.images import DEFAULT_MAX_PIXELS, ImageSource
from artefact.embed.models import ModelDescription
from artefact.embed.preprocess import PreprocessConfig, load_for_model, normalise_batch

log = logging.getLogger(__name__)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class Embedder:
    """Wraps a torch image encoder (and optional text encoder) behind numpy in/out.

    Args:
        description: what was loaded; goes into the index manifest.
        image_forward: maps a float NCHW tensor to (N, dim) features.
        text_forward: maps a list of strings to (N, dim) features, or None.
        device: torch device string.
        batch_size: images per forward pass.
        module: the underlying torch module (to save a checkpoint, inspect weights).
    """

    def __init__(
        self,
        description: ModelDescription,
        image_forward: Callable[[Any], Any],
        text_forward: Callable[[list[str]], Any] | None,
        device: str,
        batch_size: int = 32,
        module: Any = None,
    ) -> None:
        self.module = module
        self.description = description
        self.preprocess = PreprocessConfig.from_dict(description.preprocess)
        self._image_forward = image_forward
        self._text_forward = text_forward
        self.device = device
        self.batch_size = max(1, batch_size)

    @property
    def dim(self) -> int:
        return self.description.dim

    @property
    def has_text(self) -> bool:
        return self._text_forward is not None

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed uint8 HxWx3 model inputs made by `artefact.embed.preprocess.prepare`."""
        import torch

        if len(arrays) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(arrays), self.batch_size):
                chunk = normalise_batch(list(arrays[start : start + self.batch_size]), self.preprocess)
                x = torch.from_numpy(chunk).to(self.device)
                out.append(self._image_forward(x).float().cpu().numpy())
        return l2_normalise(np.concatenate(out))

    def embed_images(
        self, images: Sequence[ImageSource], *, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> np.ndarray:
        """Decode (same loader as ingest) and embed photos given as paths or bytes.

        Raises:
            ImageDecodeError, ImageTooLargeError: for the first unusable photo.
        """
        arrays = [load_for_model(src, self.preprocess, max_pixels=max_pixels)[0] for src in images]
        return self.embed_prepared(arrays)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries into the image space.

        Raises:
            ModelUnavailableError: the model has no text tower.
        """
        import torch

        if self._text_forward is None:
            raise ModelUnavailableError(
                f"model {self.description.label()} has no text tower: text search needs a "
                "CLIP model (e.g. --model ViT-B-32 --pretrained laion2b_s34b_b79k)"
            )
        with torch.inference_mode():
            feats = self._text_forward(list(texts)).float().cpu().numpy()
        return l2_normalise(feats)
