"""Settings from ARTEFACT_* environment variables, overridden by command-line flags."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from artefact.embed.images import DEFAULT_MAX_PIXELS
from artefact.index.home import Home
from artefact.index.stores.optimize import FLAT_MAX, TARGET_RECALL, StoreOptions
from artefact.embed.runtimes.variants import AUTO
from artefact.index.search import DEFAULT_RERANK
from artefact.embed.models import (
    EFFICIENTNET_LITE0,
    OFFLINE_FALLBACK_SPEC,
    OPEN_CLIP,
    RANDOM_INIT,
    LoadOptions,
    ModelDescription,
    ModelSpec,
    DEFAULT_MODEL,
    DEFAULT_TAG,
)


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "artefact-search"


class Settings(BaseSettings):
    """One installation's configuration; built by the CLI entry point, passed down."""

    model_config = SettingsConfigDict(env_prefix="ARTEFACT_", extra="ignore")

    home: Path = default_home()
    backend: str | None = None  # open_clip | efficientnet_lite0; unset = default CLIP with offline fallback
    model: str | None = None
    pretrained: str | None = None
    model_config_dir: Path | None = None
    device: str = "auto"
    threads: int | None = None
    # Image-model runtime: auto = the backbone's measured fastest variant that keeps recall
    # (artefact.embed.runtimes.variants.DEFAULTS), or torch / onnx / openvino; precision fp32 / int8 / auto.
    runtime: str = AUTO
    precision: str = AUTO
    batch_size: int = 32
    workers: int | None = None
    offline: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    match_threshold: float | None = None

    # HTTP service
    host: str = "127.0.0.1"
    port: int = 8000
    # TLS for `serve` (PEM files); without them, serving off loopback sends keys in clear (warned).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's
    # forwarded_allow_ips); empty: forwarding headers are ignored, and refused in open mode.
    trusted_proxies: list[str] = []
    # Searches one key may make per minute (a burst of as many is allowed); 0 = no limit.
    search_rate_per_minute: int = 120
    max_request_bytes: int = 60 * 1024 * 1024
    max_photo_bytes: int = 25 * 1024 * 1024
    max_photos: int = 8
    max_k: int = 100
    # Defaults of the search commands, owned here and nowhere else.
    rerank: int = DEFAULT_RERANK  # top candidates given the geometric second look; 0 = off
    cli_results: int = 5  # objects a CLI search prints
    http_results: int = 10  # objects an HTTP search returns unless `k` is sent
    # Photos decoded at once across all requests (unset: CPU cores, fewer where the memory available
    # would not hold that many decodes at the pixel cap). Decoding is CPU-bound, so more slots add no
    # speed, only memory: each decode holds up to ~8 bytes per pixel until it is done.
    decode_slots: int | None = None
    cors_origins: list[str] = []
    # How long the web page waits for a search's answer before it gives up and says so (/v1/meta).
    search_timeout_s: float = 30.0
    # Long side of the JPEG previews the service makes for the page (POST /v1/preview) unless asked.
    preview_side: int = 1024
    audit_keep_photos: bool = False
    audit_retention_days: int = 90
    # A catalogue imported from a bundle is flagged stale past this age (stats, /readyz); None: never.
    catalogue_max_age_days: float | None = 30.0

    def explicit_spec(self, existing: ModelDescription | None = None) -> ModelSpec | None:
        """The model the user named, or None to mean 'the index's own, or the default (may fall back)'.

        `existing` is the model an index was built with: naming only its family (`--backend
        efficientnet_lite0`, as scripts have always done) keeps that model, so an index made by an
        earlier default is still searched after the default moved on.
        """
        if not (self.backend or self.model or self.pretrained):
            return None
        if existing is not None and self.backend == existing.backend and not (self.model or self.pretrained):
            return None
        backend = self.backend or (EFFICIENTNET_LITE0 if self.model and "efficientnet" in self.model else OPEN_CLIP)
        if backend == EFFICIENTNET_LITE0:
            name = self.model or OFFLINE_FALLBACK_SPEC.model_name
            default_weights = OFFLINE_FALLBACK_SPEC.pretrained
        else:
            name = self.model or DEFAULT_MODEL
            default_weights = DEFAULT_TAG  # the model's preferred open_clip tag
        pretrained = self.pretrained if self.pretrained is not None else default_weights
        if pretrained and pretrained.lower() in ("none", "random", RANDOM_INIT):
            pretrained = None
        return ModelSpec(backend, name, pretrained)

    # Vector store: exact flat search up to index_flat_max photos, the compressed kind beyond
    # (`artefact index optimize` builds it; --type there pins a kind instead).
    index_flat_max: int = FLAT_MAX
    index_compressed: str = "ivf-pq"  # ivf-pq | hnsw
    index_target_recall: float = TARGET_RECALL  # recall@10 against exact search that optimize tunes for
    index_full_dtype: str = "float32"  # full vectors kept on disk for exact re-scoring (float16 halves them)

    # Where the vectors live: faiss (files beside the catalogue), milvus-lite:PATH (a local file; relative =
    # inside the home) or milvus://HOST:PORT[/DB]. The home records the first choice; later runs may omit it.
    vector_store: str | None = None

    def store_options(self) -> StoreOptions:
        return StoreOptions(flat_max=self.index_flat_max, compressed=self.index_compressed,
                            target_recall=self.index_target_recall, full_dtype=self.index_full_dtype)

    @property
    def paths(self) -> Home:
        """Every file and folder name inside the home folder."""
        return Home(self.home)

    def load_options(self) -> LoadOptions:
        return LoadOptions(
            cache_dir=self.paths.models,
            allow_download=not self.offline,
            device=self.device,
            threads=self.threads,
            batch_size=self.batch_size,
            config_dir=self.model_config_dir,
            runtime=self.runtime,
            precision=self.precision,
        )
