"""open_clip backend: pretrained tags (downloaded once to the cache), checkpoint files, or model folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from artefact.embed.embedder import Embedder
from artefact.embed.errors import ModelUnavailableError
from artefact.embed.models import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEFAULT_TAG,
    OPEN_CLIP,
    RANDOM_INIT,
    LoadOptions,
    ModelDescription,
    ModelSpec,
    file_sha256,
    host_reachable,
    pick_device,
    set_threads,
)

log = logging.getLogger(__name__)

LOCAL_DIR = "local-dir:"
# File names open_clip publishes on the Hugging Face hub, preferred first.
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def register_model_configs(config_dir: Path | None) -> None:
    """Make extra open_clip model configs (one JSON per model) known by file stem."""
    if config_dir is None:
        return
    import open_clip

    if not Path(config_dir).is_dir():
        raise ModelUnavailableError(f"model config folder not found: {config_dir}")
    open_clip.add_model_config(str(config_dir))


def _cached_hub_file(repo: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import hf_hub_download

    for filename in HF_WEIGHT_FILES:
        try:
            path = hf_hub_download(
                repo, filename, cache_dir=str(cache_dir) if cache_dir else None, local_files_only=True
            )
            return Path(path)
        except Exception:  # noqa: BLE001 - "not cached" comes as several hub error types
            continue
    return None


def _how_to_get(spec: ModelSpec, cfg: dict[str, Any], cache_dir: Path | None) -> str:
    source = f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}" if cfg.get("hf_hub") else cfg.get("url", "?")
    return (
        f"weights for {spec.model_name} / {spec.pretrained} are not in the model cache "
        f"({cache_dir or 'default cache'}) and cannot be downloaded from here. Either run "
        f"`artefact model fetch --model {spec.model_name} --pretrained {spec.pretrained}` on a "
        f"connected machine and copy its models/ folder into this installation's home, or "
        f"download {HF_WEIGHT_FILES[1]} from {source} and set ARTEFACT_PRETRAINED=/path/to/that/file "
        f"(or pass --pretrained /path/to/file)."
    )


def resolve_weights(spec: ModelSpec, options: LoadOptions) -> tuple[Path | None, dict[str, Any]]:
    """Find the weights file for a spec, downloading to the cache when allowed.

    Returns:
        (path or None for random init, the tag's preprocess overrides).
    """
    import open_clip

    if spec.model_name.startswith(LOCAL_DIR):
        folder = Path(spec.model_name[len(LOCAL_DIR) :])
        if not (folder / "open_clip_config.json").is_file():
            raise ModelUnavailableError(f"model folder {folder} has no open_clip_config.json")
        for name in HF_WEIGHT_FILES:
            if (folder / name).is_file():
                return folder / name, {}
        found = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_FILE_SUFFIXES)
        if not found:
            raise ModelUnavailableError(f"model folder {folder} holds no weights file")
        return found[0], {}
    if spec.pretrained in (None, "", RANDOM_INIT):
        return None, {}
    as_path = Path(spec.pretrained)
    if as_path.is_file():
        return as_path, {}
    cfg = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained)
    if not cfg:
        if as_path.suffix in WEIGHT_FILE_SUFFIXES or "/" in spec.pretrained:
            raise ModelUnavailableError(f"checkpoint file not found: {spec.pretrained}")
        tags = open_clip.list_pretrained_tags_by_model(spec.model_name)
        raise ModelUnavailableError(
            f"{spec.pretrained!r} is neither a checkpoint file nor a pretrained tag of "
            f"{spec.model_name}; known tags: {', '.join(tags) or 'none'}"
        )
    overrides = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    if cfg.get("hf_hub"):
        cached = _cached_hub_file(cfg["hf_hub"].rstrip("/"), options.cache_dir)
        if cached is not None:
            return cached, overrides
    if not options.allow_download or not host_reachable():
        raise ModelUnavailableError(_how_to_get(spec, cfg, options.cache_dir))
    try:
        path = open_clip.download_pretrained(
            cfg, cache_dir=str(options.cache_dir) if options.cache_dir else None
        )
    except Exception as exc:  # network and hub errors come in many types
        raise ModelUnavailableError(f"{_how_to_get(spec, cfg, options.cache_dir)} ({exc})") from exc
    if not path:
        raise ModelUnavailableError(_how_to_get(spec, cfg, options.cache_dir))
    return Path(path), overrides


def load_open_clip(spec: ModelSpec, options: LoadOptions) -> Embedder:
    import open_clip
    import torch

    register_model_configs(options.config_dir)
    if spec.pretrained == DEFAULT_TAG:
        tags = open_clip.list_pretrained_tags_by_model(spec.model_name)
        preferred = DEFAULT_PRETRAINED if spec.model_name == DEFAULT_MODEL else (tags[0] if tags else None)
        spec = ModelSpec(spec.backend, spec.model_name, preferred)
    if not spec.model_name.startswith(LOCAL_DIR) and open_clip.get_model_config(spec.model_name) is None:
        raise ModelUnavailableError(
            f"unknown open_clip model {spec.model_name!r}; see `python -c \"import open_clip; "
            "print(open_clip.list_models())\"`, or use local-dir:/path/to/model_folder"
        )
    weights, overrides = resolve_weights(spec, options)
    set_threads(options.threads)
    device = pick_device(options.device)
    if weights is None:
        torch.manual_seed(0)  # reproducible random weights: an index stays queryable
    try:
        model = open_clip.create_model(
            spec.model_name,
            pretrained=None if spec.model_name.startswith(LOCAL_DIR) or weights is None else str(weights),
            device=device,
            force_preprocess_cfg=overrides or None,
        )
    except Exception as exc:  # a bad checkpoint raises many types (EOFError, IndexError, SafetensorError...)
        raise ModelUnavailableError(
            f"cannot build {spec.label()} from {weights or 'random init'}: {type(exc).__name__}: {exc}"
        ) from exc
    model.eval()
    preprocess = open_clip.get_model_preprocess_cfg(model)
    tokenizer = open_clip.get_tokenizer(spec.model_name)
    dim = _output_dim(model, preprocess, device)

    def image_forward(x: "torch.Tensor") -> "torch.Tensor":
        return model.encode_image(x)

    def text_forward(texts: list[str]) -> "torch.Tensor":
        return model.encode_text(tokenizer(texts).to(device))

    has_text = hasattr(model, "encode_text")
    description = ModelDescription(
        backend=OPEN_CLIP,
        model_name=spec.model_name,
        pretrained=spec.pretrained,
        dim=dim,
        preprocess=_plain(preprocess),
        weights_sha256=file_sha256(weights, options.cache_dir) if weights else f"{RANDOM_INIT}:seed=0",
        has_text=has_text,
    )
    log.info("loaded %s on %s (dim %d)", description.label(), device, dim)
    return Embedder(description, image_forward, text_forward if has_text else None, device, options.batch_size, model)


def _output_dim(model: Any, preprocess: dict[str, Any], device: str) -> int:
    import torch

    size = preprocess.get("size", 224)
    h, w = (size, size) if isinstance(size, int) else size
    with torch.inference_mode():
        return int(model.encode_image(torch.zeros(1, 3, h, w, device=device)).shape[-1])


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
