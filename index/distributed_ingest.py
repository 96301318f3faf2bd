"""Bulk ingest on a Ray cluster: decoding, local features and embedding as Ray Data batch transforms; the driver commits.

The per-photo work is the in-process ingest's own (`decode_file`, the embedder's
`embed_prepared`), and the driver's side is the same `IngestRun`: photos already committed
are skipped before anything is sent to the cluster, a bad photo is reported the same way,
and results are committed batch by batch as they stream back, so a killed driver loses at
most the batch in flight and a rerun embeds only what is missing. Ray is imported only
when a distributed ingest runs (an optional extra: `artefact-search[scale]`).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from artefact.embed.images import DEFAULT_MAX_PIXELS
from artefact.embed.loader import embedder_for
from artefact.embed.models import LoadOptions, ModelDescription
from artefact.embed.preprocess import PreprocessConfig
from artefact.embed.runtimes.variants import agreement_problem
from artefact.index.errors import ClusterError
from artefact.index.ingest import (
    DecodedPhoto,
    DecodeFailure,
    IngestReport,
    IngestRun,
    PhotoTask,
    decode_file,
    prepare_decode_worker,
)
from artefact.index.library import Library
from artefact.index.verification import DEFAULT_KIND, Features

log = logging.getLogger(__name__)

LOCAL = "local"  # --ray local: a one-machine Ray started (and stopped) by this process
# Tasks per Ray dataset: the driver holds one window of tasks at a time, so a manifest of
# millions of photos needs no more memory than this many small rows (each window's actors
# load the model once: a few seconds against the hours a window of photos takes).
WINDOW = 50_000
CPU_BATCH, GPU_BATCH = 32, 256  # photos per actor call: enough for a full forward pass on each
NO_PHOTO = np.zeros((0, 0, 3), np.uint8)  # the model input stays on the worker; the driver needs only vectors


@dataclass(frozen=True)
class RayPlan:
    """How a run uses the cluster: actors, photos per actor call, and what each actor holds."""

    actors: int
    batch_size: int
    gpus_per_actor: float
    decode_in_actor: bool  # CPU clusters: each actor decodes its own batch (no second pool fighting for cores)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@contextmanager
def ray_cluster(address: str) -> Iterator[None]:
    """Connected to Ray for the block: `local` starts a one-machine Ray, anything else joins a cluster.

    A Ray already initialised in this process (a test, a notebook) is used as it is and left running.

    Raises:
        ClusterError: Ray is not installed, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("distributed ingest needs Ray: pip install 'artefact-search[scale]'") from exc
    if ray.is_initialized():
        yield
        return
    try:
        # Workers inherit the driver's stderr logs otherwise; the driver shows its own progress bar.
        if address == LOCAL:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def plan(actors: int | None = None, batch_size: int | None = None) -> RayPlan:
    """Actors and batch size from the cluster's resources unless given: one actor per GPU (decoding
    then runs as CPU tasks beside them), else one per CPU core, each decoding and embedding its batch."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus:
        return RayPlan(actors or gpus, batch_size or GPU_BATCH, 1.0, decode_in_actor=False)
    return RayPlan(actors or cpus, batch_size or CPU_BATCH, 0.0, decode_in_actor=True)


def decode_batch(batch: dict[str, np.ndarray], cfg: PreprocessConfig, max_pixels: int, feature_kind: str | None) -> dict[str, np.ndarray]:
    """Ray transform: `decode_file` on each row, as columns (a failure is a row with its reason)."""
    results = [decode_file(str(loc), cfg, max_pixels, feature_kind) for loc in batch["location"]]
    out = dict(batch)
    out["reason"] = np.array([r.reason if isinstance(r, DecodeFailure) else "" for r in results], dtype=object)
    photos = [r if isinstance(r, DecodedPhoto) else None for r in results]
    out["sha256"] = np.array([p.sha256 if p else "" for p in photos], dtype=object)
    out["size_bytes"] = np.array([p.size_bytes if p else 0 for p in photos], dtype=np.int64)
    out["width"] = np.array([p.width if p else 0 for p in photos], dtype=np.int64)
    out["height"] = np.array([p.height if p else 0 for p in photos], dtype=np.int64)
    # Ragged model inputs travel as an object column (Ray stores variable-shaped tensors natively).
    out["array"] = np.array([p.array if p else NO_PHOTO for p in photos] + [None], dtype=object)[:-1]
    rows = [p.features.to_row() if p and p.features is not None else None for p in photos]
    out["feat_n"] = np.array([r[1] if r else -1 for r in rows], dtype=np.int64)
    out["feat_w"] = np.array([r[2] if r else 0 for r in rows], dtype=np.int64)
    out["feat_h"] = np.array([r[3] if r else 0 for r in rows], dtype=np.int64)
    out["feat_xy"] = np.array([r[4] if r else b"" for r in rows], dtype=object)
    out["feat_desc"] = np.array([r[5] if r else b"" for r in rows], dtype=object)
    return out


class PhotoEmbedder:
    """Ray Data callable class: one per actor, so the model loads once per actor.

    Embeds the batch's decoded photos (decoding them first when the actor also decodes); a photo
    whose bytes equal the catalogued ones is not embedded (the driver only touches its row).
    """

    def __init__(self, model: ModelDescription, options: LoadOptions, max_pixels: int,
                 feature_kind: str | None, decode: bool) -> None:
        prepare_decode_worker()
        self.embedder = embedder_for(model, None, options)
        loaded = self.embedder.description
        problem = (f"loaded {loaded.label()} (weights {loaded.weights_sha256[:12]})"
                   if loaded.identity() != model.identity() else agreement_problem(model, loaded))
        if problem:  # e.g. another weights file in a worker's cache: its vectors would not be comparable
            raise ClusterError(f"a Ray worker cannot embed with the index's model {model.label()}: {problem}")
        self.dim = loaded.dim
        self.cfg, self.max_pixels, self.feature_kind, self.decode = self.embedder.preprocess, max_pixels, feature_kind, decode

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.decode:
            batch = decode_batch(batch, self.cfg, self.max_pixels, self.feature_kind)
        n = len(batch["idx"])
        todo = [i for i in range(n) if not batch["reason"][i] and batch["sha256"][i] != batch["known_sha256"][i]]
        vectors = np.zeros((n, self.dim), np.float32)
        if todo:
            vectors[todo] = self.embedder.embed_prepared([batch["array"][i] for i in todo])
        out = {k: v for k, v in batch.items() if k not in ("array", "location")}
        out["vector"] = vectors
        return out


def ingest_on_ray(
    library: Library,
    model: ModelDescription,
    options: LoadOptions,
    manifest: Path,
    images_root: Path | str,
    *,
    actors: int | None = None,
    ray_batch_size: int | None = None,
    batch_size: int = 64,
    save_every_s: float = 30.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    local_features: str | None = DEFAULT_KIND,
    window: int = WINDOW,
) -> IngestReport:
    """`ingest_manifest` with the photo work on the Ray cluster this process is connected to (`ray_cluster`).

    Args:
        model: the model the driver loaded and checked against the index; every actor loads
            the same and refuses to start otherwise.
        options: how actors load it (threads are set to 1 per CPU actor).
        actors, ray_batch_size: the actor pool and photos per actor call (default: `plan`).
        batch_size: photos per catalogue commit on the driver.
        window: manifest photos per Ray dataset (bounds the driver's memory).

    Raises:
        ClusterError: the workers cannot load the model, or the cluster fails.
        IndexMismatchError, ManifestError, ImageRootError: as `ingest_manifest`.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from ray.exceptions import RayError

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts committed photos
    ctx.print_on_execution_start = False
    how = plan(actors, ray_batch_size)
    log.info("Ray ingest: %s", how.to_dict())
    run = IngestRun(library, model, manifest, images_root, local_features=local_features,
                    save_every_s=save_every_s, progress=progress, on_batch=on_batch)
    actor_options = options if how.gpus_per_actor else replace(options, threads=1)
    cfg = PreprocessConfig.from_dict(model.preprocess)  # what every actor's model decodes for
    with run:
        tasks = run.tasks()
        while chunk := list(islice(tasks, window)):
            ds: Any = ray.data.from_items(
                [{"idx": i, "location": t.location, "known_sha256": t.known.sha256 if t.known else ""}
                 for i, t in enumerate(chunk)],
                override_num_blocks=max(1, math.ceil(len(chunk) / how.batch_size)),
            )
            if not how.decode_in_actor:
                ds = ds.map_batches(decode_batch, fn_args=(cfg, max_pixels, run.feature_kind), batch_size=how.batch_size,
                                    batch_format="numpy", num_cpus=1)
            ds = ds.map_batches(
                PhotoEmbedder,
                fn_constructor_kwargs={"model": model, "options": actor_options, "max_pixels": max_pixels,
                                       "feature_kind": run.feature_kind, "decode": how.decode_in_actor},
                batch_size=how.batch_size, batch_format="numpy",
                compute=ActorPoolStrategy(size=how.actors), num_cpus=1, num_gpus=how.gpus_per_actor,
            )
            try:
                _commit_stream(run, chunk, ds.iter_batches(batch_size=batch_size, batch_format="numpy"), batch_size)
            except RayError as exc:
                raise ClusterError(f"the Ray ingest failed: {exc}") from exc
        run.backfill(cfg, max_pixels)
    return run.report


def _commit_stream(run: IngestRun, chunk: list[PhotoTask], batches: Any, batch_size: int) -> None:
    """Take results as they stream back, committing every `batch_size` embedded photos."""
    taken = bytearray(len(chunk))  # a task retried after a lost worker may come back twice: take it once
    pending: list[tuple[PhotoTask, DecodedPhoto]] = []
    vectors: list[np.ndarray] = []
    for out in batches:
        for j, idx in enumerate(out["idx"].tolist()):
            if taken[idx]:
                continue
            taken[idx] = 1
            task = chunk[idx]
            photo = run.take(task, _decoded(out, j, run.feature_kind))
            if photo is not None:
                pending.append((task, photo))
                vectors.append(out["vector"][j])
            if len(pending) >= batch_size:
                run.commit(pending, np.stack(vectors))
                pending, vectors = [], []
    if pending:
        run.commit(pending, np.stack(vectors))


def _decoded(out: dict[str, np.ndarray], j: int, feature_kind: str | None) -> DecodedPhoto | DecodeFailure:
    """One result row back as what `decode_file` returned on the worker (less the model input)."""
    if out["reason"][j]:
        return DecodeFailure(str(out["reason"][j]))
    feats = None
    if feature_kind and out["feat_n"][j] >= 0:
        feats = Features.from_row(feature_kind, int(out["feat_n"][j]), int(out["feat_w"][j]),
                                  int(out["feat_h"][j]), bytes(out["feat_xy"][j]), bytes(out["feat_desc"][j]))
    return DecodedPhoto(str(out["sha256"][j]), int(out["size_bytes"][j]), NO_PHOTO,
                        int(out["width"][j]), int(out["height"][j]), feats)
