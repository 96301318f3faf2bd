"""Bulk ingest on a real local Ray (2 CPUs): same vectors, search results and problem report as in-process; a killed driver resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from artefact.index.distributed_ingest import ingest_on_ray
from artefact.index.ingest import IngestReport, ingest_manifest
from artefact.index.library import Library
from artefact.index.search import search

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES, SAMPLE_QUERIES
from random_inventory import committed_images, random_inventory
from test_ingest import check_bad_report, make_bad_catalogue


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (its start-up is the slow part); other drivers join it by this address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def on_ray(library: Library, embedder, options, manifest: Path, root: Path | str, **kw) -> IngestReport:
    kw.setdefault("progress", False)
    return ingest_on_ray(library, embedder.description, options, manifest, root, **kw)


def vectors_by_path(library: Library) -> dict[str, np.ndarray]:
    out = {}
    for ids, xb in library.catalogue.vectors():
        info = library.catalogue.images_by_id(ids.tolist())
        for i, v in zip(ids.tolist(), xb):
            out[info[i][1].path] = v
    return out


def test_ray_ingest_gives_the_same_vectors_and_search_results(tmp_path, ray_address, tiny_embedder, tiny_options):
    with Library(tmp_path / "local") as local, Library(tmp_path / "ray") as distributed:
        ingest_manifest(local, tiny_embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
        rep = on_ray(distributed, tiny_embedder, tiny_options, SAMPLE_CSV, SAMPLE_IMAGES, actors=2, ray_batch_size=4,
                     batch_size=5)
        assert (rep.objects_created, rep.images_added, rep.images_failed, rep.problems) == (27, 33, 0, [])
        a, b = vectors_by_path(local), vectors_by_path(distributed)
        assert len(a) == 33 and set(a) == set(b)
        cosines = np.array([float(a[p] @ b[p]) for p in a])
        assert cosines.min() >= 0.9999, cosines.min()
        assert distributed.vectors.ntotal == 33 and distributed.inspect()["problems"] == []
        assert distributed.catalogue.counts()["images"] == 33
        for query in sorted(SAMPLE_QUERIES.glob("query-*.jpg")):
            want = search(local, tiny_embedder, [query], k=5)
            got = search(distributed, tiny_embedder, [query], k=5)
            assert [(m.record.object_id, m.inliers) for m in got.matches] == \
                   [(m.record.object_id, m.inliers) for m in want.matches], query.name
            assert np.allclose([m.score for m in got.matches], [m.score for m in want.matches], atol=1e-4)
        # Idempotent: a rerun sends nothing to the cluster.
        again = on_ray(distributed, tiny_embedder, tiny_options, SAMPLE_CSV, SAMPLE_IMAGES, actors=2)
        assert (again.images_added, again.images_unchanged, again.objects_unchanged) == (0, 33, 27)


def test_bad_rows_are_reported_and_skipped_as_in_process_from_a_file_uri(tmp_path, ray_address, tiny_embedder,
                                                                        tiny_options):
    manifest, root = make_bad_catalogue(tmp_path)
    with Library(tmp_path / "local") as local, Library(tmp_path / "ray") as distributed:
        want = ingest_manifest(local, tiny_embedder, manifest, root, workers=0, progress=False)
        got = on_ray(distributed, tiny_embedder, tiny_options, manifest, root.resolve().as_uri(), actors=1)
        check_bad_report(distributed, got)
        # The same rows and words; the order may differ (results stream back as they are done).
        as_rows = lambda rep: sorted((p.kind, p.object_id, p.file, p.problem) for p in rep.problems)  # noqa: E731
        assert as_rows(got) == as_rows(want)
        assert (got.images_added, got.images_failed, got.duplicates) == (want.images_added, want.images_failed,
                                                                          want.duplicates)
        # A file:// root stores the plain local path: the same rows as a folder root, no duplicates.
        assert set(vectors_by_path(distributed)) == set(vectors_by_path(local))


def test_killed_driver_resumes_without_loss_or_duplicates(tmp_path, ray_address, tiny_config_dir):
    images, home = tmp_path / "images", tmp_path / "home"
    total = 40 * 2
    manifest = random_inventory(images, 40, 2, seed=11)
    cli = [sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend", "open_clip", "--model", "tiny-clip",
           "--pretrained", "none", "--model-config-dir", str(tiny_config_dir), "index", "add", str(manifest),
           "--images", str(images), "--ray", ray_address, "--ray-actors", "1", "--ray-batch-size", "4",
           "--batch-size", "4", "--local-features", "none"]
    proc = subprocess.Popen([*cli, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    while committed_images(home) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the driver ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    # Freeze it first, so the count read next is exactly what the kill leaves behind.
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    committed = committed_images(home)
    assert 8 <= committed < total, committed
    rerun = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    # Nothing committed before the kill is embedded again; everything else is, once.
    assert report["images_unchanged"] == committed, (report, committed)
    assert report["images_added"] == total - committed and report["images_failed"] == 0, report
    with Library(home) as lib:
        assert lib.catalogue.counts()["images"] == total and lib.vectors.ntotal == total
        assert lib.inspect()["problems"] == []
        paths = [img.path for oid in (f"OBJ-{o:03d}" for o in range(40)) for img in lib.catalogue.object_images(oid)]
    assert len(paths) == len(set(paths)) == total


def test_a_lost_actor_is_replaced_and_nothing_is_lost_or_duplicated(tmp_path, ray_address, tiny_embedder,
                                                                     tiny_options):
    """kill -9 of the embedding actor after the first commit: Ray starts another and retries its batches."""
    psutil = pytest.importorskip("psutil")
    images = tmp_path / "images"
    total = 30 * 2
    manifest = random_inventory(images, 30, 2, seed=11)
    killed: list[int] = []
    replacements: set[int] = set()

    def actor_pids() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"])
                if any("PhotoEmbedder" in part for part in p.info.get("cmdline") or [])]

    def kill_the_actor(done: int) -> None:
        if not killed:
            for pid in actor_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        else:
            replacements.update(set(actor_pids()) - set(killed))

    with Library(tmp_path / "home") as lib:
        rep = on_ray(lib, tiny_embedder, tiny_options, manifest, images, actors=1, ray_batch_size=2, batch_size=1,
                     on_batch=kill_the_actor, local_features=None)
        assert killed and replacements, (killed, replacements)  # the kill landed mid-run and a new actor took over
        assert (rep.images_added, rep.images_failed, rep.problems) == (total, 0, [])
        assert lib.catalogue.counts()["images"] == total and lib.vectors.ntotal == total
        assert lib.inspect()["problems"] == []
