"""Bulk ingest of the real sample catalogue: counts, idempotence, changed and bad photos, model binding."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artefact.index.errors import IndexMismatchError
from artefact.embed.preprocess import load_for_model
from artefact.embed.preprocess import PreprocessConfig
from artefact.index.ingest import DecodedPhoto, DecodeFailure, IngestReport, decode_file, ingest_manifest
from artefact.index.home import Home
from artefact.index.library import Library
from artefact.index.manifest import read_manifest, resolve_images
from artefact.index.vectors import manifest_path

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES, SAMPLE_JSONL, CountingEmbedder, other_weights


def ingest(library: Library, embedder, manifest: Path, root: Path, **kw) -> IngestReport:
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return ingest_manifest(library, embedder, manifest, root, **kw)


def test_decode_file_returns_a_typed_photo_or_a_reason(tmp_path):
    """The worker's result: hash, size, model input, upright size and features, or why not."""
    cfg = PreprocessConfig(size=32)
    source = SAMPLE_IMAGES / "SMP-COIN-01" / "1.jpg"
    photo = decode_file(str(source), cfg, max_pixels=10**8, feature_kind="orb")
    assert isinstance(photo, DecodedPhoto)
    data = source.read_bytes()
    assert photo.sha256 == hashlib.sha256(data).hexdigest() and photo.size_bytes == len(data)
    assert photo.array.shape == (32, 32, 3) and photo.array.dtype == np.uint8
    with Image.open(source) as img:
        assert {photo.width, photo.height} == set(img.size)
    assert photo.features is not None and photo.features.kind == "orb" and len(photo.features) > 0
    assert decode_file(str(source), cfg, max_pixels=10**8).features is None

    missing = decode_file(str(tmp_path / "gone.jpg"), cfg, max_pixels=10**8)
    assert isinstance(missing, DecodeFailure) and "cannot read file" in missing.reason
    (tmp_path / "notes.jpg").write_text("not a photo")
    garbage = decode_file(str(tmp_path / "notes.jpg"), cfg, max_pixels=10**8)
    assert isinstance(garbage, DecodeFailure) and garbage.reason and "uploaded photo" not in garbage.reason


def manifest_counts(path: Path) -> tuple[int, int, Counter]:
    rows = list(read_manifest(path))
    statuses = Counter(r.record.fields.get("status", "stolen") for r in rows)
    n_images = sum(1 for r in rows for _ in resolve_images(r.images, SAMPLE_IMAGES))
    return len(rows), n_images, statuses


def assert_healthy(lib: Library) -> None:
    assert lib.check() == []
    ids = lib.vectors.ids()
    assert len(ids) == len(np.unique(ids)), "duplicate ids in the FAISS index"


def snapshot(lib: Library) -> dict:
    """Everything an ingest could change, for 'nothing was changed' checks."""
    paths = lib.paths
    index, manifest = paths.vectors, manifest_path(paths.vectors)
    return {
        "stats": {k: v for k, v in lib.stats().items() if k not in ("index_bytes", "catalogue_bytes")},  # sizes move with WAL checkpoints
        "index": index.read_bytes() if index.exists() else None,
        "manifest": manifest.read_bytes() if manifest.exists() else None,
        "model": lib.catalogue.get_meta("model"),
        "history": len(lib.catalogue.history(limit=10_000)),
        "reports": sorted(p.name for p in paths.reports.glob("*")) if paths.reports.exists() else [],
        "images": [(im.image_id, im.sha256) for oid in ("SMP-COIN-01", "SMP-PAINT-01") for im in lib.catalogue.object_images(oid)],
    }


def read_report(path: str | None) -> list[dict[str, str]]:
    assert path is not None, "problems were found but no CSV report was written"
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- happy path


def test_ingest_sample_counts_match_manifest(tmp_path, sample_root, counting_tiny):
    n_objects, n_images, statuses = manifest_counts(SAMPLE_CSV)
    assert (n_objects, n_images) == (27, 33)
    with Library(tmp_path / "home") as lib:
        rep = ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        assert rep.objects_created == 27 and rep.objects_updated == rep.objects_unchanged == 0
        assert rep.images_added == 33 and rep.images_failed == 0 and rep.images_replaced == 0
        assert rep.duplicates == 0 and rep.problems == [] and rep.report_path is None
        assert counting_tiny.embedded == 33
        stats = lib.stats()
        assert stats["objects"] == 27 and stats["images"] == 33 and stats["vectors"] == 33
        assert stats["by_status"] == dict(statuses)
        assert stats["objects_without_images"] == 0
        assert stats["model"] == counting_tiny.description.to_dict()
        assert [Path(im.path).name for im in lib.catalogue.object_images("SMP-ARCH-01")] == ["1.jpg", "2.jpg"]
        assert len(lib.catalogue.object_images("SMP-COIN-08")) == 2  # folder reference: both photos
        assert_healthy(lib)
        # The saved index file describes itself.
        m = json.loads(manifest_path(lib.index_path).read_text())
        assert m["count"] == 33 and m["dim"] == 32 and m["generation"] == lib.catalogue.generation
        assert m["model"]["weights_sha256"] == counting_tiny.description.weights_sha256
        assert not [p.name for p in lib.home.iterdir() if p.name.endswith(".tmp")]

    # A fresh open sees the same thing, from the saved files.
    with Library(tmp_path / "home") as lib:
        assert lib.stats()["vectors"] == 33
        assert_healthy(lib)


def test_jsonl_manifest_gives_the_same_library(tmp_path, sample_root, tiny_embedder):
    with Library(tmp_path / "a") as a, Library(tmp_path / "b") as b:
        ingest(a, tiny_embedder, SAMPLE_CSV, sample_root)
        ingest(b, tiny_embedder, SAMPLE_JSONL, sample_root)
        assert a.catalogue.counts() == b.catalogue.counts()
        for oid in ("SMP-PAINT-01", "SMP-COIN-14", "SMP-PHOTO-01"):
            assert a.catalogue.get_object(oid) == b.catalogue.get_object(oid)
            ia, ib = a.catalogue.object_images(oid), b.catalogue.object_images(oid)
            assert [i.sha256 for i in ia] == [i.sha256 for i in ib]
            np.testing.assert_allclose(
                a.vectors.reconstruct([i.image_id for i in ia]), b.vectors.reconstruct([i.image_id for i in ib]), atol=1e-6
            )


def test_rerun_is_idempotent(tmp_path, sample_root, counting_tiny):
    with Library(tmp_path / "home") as lib:
        ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        ids_before = np.sort(lib.vectors.ids())
        gen = lib.catalogue.generation
        counting_tiny.embedded = 0

        rep = ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        assert counting_tiny.embedded == 0, "unchanged photos were embedded again"
        assert rep.images_added == 0 and rep.images_replaced == 0 and rep.images_failed == 0
        assert rep.images_unchanged == 33
        assert rep.objects_unchanged == 27 and rep.objects_created == rep.objects_updated == 0
        assert lib.vectors.ntotal == 33
        np.testing.assert_array_equal(np.sort(lib.vectors.ids()), ids_before)
        assert lib.catalogue.generation == gen
        assert_healthy(lib)

    # Same again from a fresh process view, and with the JSONL form of the same catalogue.
    with Library(tmp_path / "home") as lib:
        rep = ingest(lib, counting_tiny, SAMPLE_JSONL, sample_root)
        assert counting_tiny.embedded == 0
        assert rep.images_added == 0 and rep.images_unchanged == 33 and rep.objects_unchanged == 27
        np.testing.assert_array_equal(np.sort(lib.vectors.ids()), ids_before)
        assert_healthy(lib)


def test_touched_but_identical_photo_is_not_reembedded(tmp_path, sample_root, counting_tiny):
    with Library(tmp_path / "home") as lib:
        ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        (before,) = lib.catalogue.object_images("SMP-COIN-02")
        p = sample_root / "SMP-COIN-02" / "1.jpg"
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        counting_tiny.embedded = 0
        rep = ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        assert counting_tiny.embedded == 0
        assert rep.images_unchanged == 33 and rep.images_added == rep.images_replaced == 0
        (after,) = lib.catalogue.object_images("SMP-COIN-02")
        assert after.image_id == before.image_id
        assert_healthy(lib)


def test_changed_photo_is_replaced(tmp_path, sample_root, counting_tiny, tiny_embedder):
    with Library(tmp_path / "home") as lib:
        ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        (old,) = lib.catalogue.object_images("SMP-PHOTO-01")
        target = sample_root / "SMP-PHOTO-01" / "1.jpg"
        new_bytes = (SAMPLE_IMAGES / "SMP-ARCH-01" / "1.jpg").read_bytes()
        target.write_bytes(new_bytes)  # same path, new content
        counting_tiny.embedded = 0

        rep = ingest(lib, counting_tiny, SAMPLE_CSV, sample_root)
        assert counting_tiny.embedded == 1
        assert rep.images_replaced == 1 and rep.images_added == 0 and rep.images_unchanged == 32
        assert lib.vectors.ntotal == 33 and lib.catalogue.counts()["images"] == 33
        (new,) = lib.catalogue.object_images("SMP-PHOTO-01")
        assert new.image_id != old.image_id
        assert new.sha256 == hashlib.sha256(new_bytes).hexdigest() != old.sha256
        assert old.image_id not in lib.vectors.ids().tolist()
        assert old.image_id not in lib.catalogue.image_ids().tolist()
        # The vector in the index is the new photo's.
        want = tiny_embedder.embed_prepared([load_for_model(target, tiny_embedder.preprocess)[0]])[0]
        np.testing.assert_allclose(lib.vectors.reconstruct([new.image_id])[0], want, atol=1e-5)
        # The new content equals SMP-ARCH-01/1.jpg byte for byte: reported as a duplicate, indexed anyway.
        assert rep.duplicates == 1
        assert_healthy(lib)

    with Library(tmp_path / "home") as lib:  # the saved index agrees
        assert old.image_id not in lib.vectors.ids().tolist()
        assert new.image_id in lib.vectors.ids().tolist()
        assert_healthy(lib)


def test_lost_faiss_file_is_rebuilt_from_catalogue(tmp_path, sample_root, tiny_embedder):
    with Library(tmp_path / "home") as lib:
        ingest(lib, tiny_embedder, SAMPLE_CSV, sample_root)
        ids = np.sort(lib.vectors.ids())
    Home(tmp_path / "home").vectors.unlink()
    with Library(tmp_path / "home") as lib:
        np.testing.assert_array_equal(np.sort(lib.vectors.ids()), ids)
        assert_healthy(lib)


# ----------------------------------------------------------------------------- bad photos


def make_bad_catalogue(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest mixing good photos with every kind of unusable one."""
    root = tmp_path / "imgs"
    for oid in ("SMP-PAINT-01", "SMP-ARCH-01", "SMP-COIN-01", "SMP-COIN-02"):
        shutil.copytree(SAMPLE_IMAGES / oid, root / oid)
    good = (SAMPLE_IMAGES / "SMP-PHOTO-01" / "1.jpg").read_bytes()
    (root / "BAD").mkdir()
    (root / "BAD" / "ok.jpg").write_bytes(good)
    (root / "BAD" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "BAD" / "text.jpg").write_text("this is a text file, not a photo\n" * 20)
    (root / "BAD" / "empty.jpg").write_bytes(b"")
    (tmp_path / "outside.jpg").write_bytes(good)
    # Exact duplicate: the same bytes under a second object.
    (root / "DUP").mkdir()
    shutil.copy(SAMPLE_IMAGES / "SMP-COIN-01" / "1.jpg", root / "DUP" / "copy.jpg")
    manifest = tmp_path / "bad.csv"
    manifest.write_text(
        "id,images,title\n"
        "SMP-PAINT-01,SMP-PAINT-01,painting\n"
        "SMP-ARCH-01,SMP-ARCH-01/1.jpg;SMP-ARCH-01/2.jpg,temple\n"
        "SMP-COIN-01,SMP-COIN-01,coin\n"
        "BAD-1,BAD/truncated.jpg;BAD/ok.jpg,truncated\n"
        "BAD-2,BAD/text.jpg,text\n"
        "BAD-3,BAD/empty.jpg,empty\n"
        "BAD-4,BAD/missing.jpg,missing\n"
        "BAD-5,../outside.jpg,outside\n"
        "DUP-1,DUP/copy.jpg,duplicate\n"
        "SMP-COIN-02,SMP-COIN-02,coin\n",
        encoding="utf-8",
    )
    return manifest, root


EXPECTED_ERRORS = {
    "BAD/truncated.jpg": ("BAD-1", ("truncated", "corrupt")),
    "BAD/text.jpg": ("BAD-2", ("not a recognised image",)),
    "BAD/empty.jpg": ("BAD-3", ("empty", "0 bytes")),
    "BAD/missing.jpg": ("BAD-4", ("not found",)),
    "../outside.jpg": ("BAD-5", ("outside",)),
}


def check_bad_report(lib: Library, rep: IngestReport) -> None:
    errors = {p.file: p for p in rep.problems if p.kind == "error"}
    assert set(errors) == set(EXPECTED_ERRORS), f"errors reported: {[(p.file, p.problem) for p in rep.problems]}"
    for ref, (oid, words) in EXPECTED_ERRORS.items():
        p = errors[ref]
        assert p.object_id == oid
        assert any(w in p.problem for w in words), f"{ref}: unhelpful reason {p.problem!r}"
    assert rep.images_failed == 5
    # Good photos all indexed: 2 + 2 + 1 + BAD/ok.jpg + DUP/copy.jpg + 1.
    assert rep.images_added == 8
    assert lib.vectors.ntotal == 8 and lib.catalogue.counts()["images"] == 8
    assert [Path(i.path).name for i in lib.catalogue.object_images("BAD-1")] == ["ok.jpg"]
    for oid in ("BAD-2", "BAD-3", "BAD-4", "BAD-5"):
        assert lib.catalogue.object_images(oid) == []
    # Duplicate across objects: a warning, both indexed.
    (dup,) = [p for p in rep.problems if p.kind == "warning"]
    assert rep.duplicates == 1
    assert (dup.object_id, dup.file) == ("DUP-1", "DUP/copy.jpg")  # SMP-COIN-01 comes first in the manifest
    assert "SMP-COIN-01" in dup.problem
    assert len(lib.catalogue.object_images("DUP-1")) == 1 and len(lib.catalogue.object_images("SMP-COIN-01")) == 1
    # The CSV report under <home>/reports/ names every file and reason.
    assert Path(rep.report_path).parent == lib.paths.reports
    rows = read_report(rep.report_path)
    by_file = {r["file"]: r for r in rows}
    for ref, (oid, words) in EXPECTED_ERRORS.items():
        assert by_file[ref]["kind"] == "error" and by_file[ref]["object_id"] == oid
        assert any(w in by_file[ref]["problem"] for w in words)
    assert sum(r["kind"] == "warning" for r in rows) == 1
    assert_healthy(lib)


def test_bad_photos_reported_and_skipped(tmp_path, tiny_embedder):
    manifest, root = make_bad_catalogue(tmp_path)
    with Library(tmp_path / "home") as lib:
        rep = ingest(lib, tiny_embedder, manifest, root, batch_size=3)
        check_bad_report(lib, rep)
        # A second run re-reports the still-bad files but embeds nothing new.
        counting = CountingEmbedder(tiny_embedder)
        rep2 = ingest(lib, counting, manifest, root)
        assert counting.embedded == 0 and rep2.images_added == 0 and rep2.images_failed == 5
        assert rep2.images_unchanged == 8
        assert lib.vectors.ntotal == 8
        assert_healthy(lib)


def test_bad_photos_with_a_real_worker_process(tmp_path, tiny_embedder):
    manifest, root = make_bad_catalogue(tmp_path)
    with Library(tmp_path / "home") as lib:
        rep = ingest(lib, tiny_embedder, manifest, root, workers=1)
        check_bad_report(lib, rep)


# ----------------------------------------------------------------------------- model binding


@pytest.mark.parametrize("workers", [0, 1])
def test_other_weights_same_dim_refused_and_nothing_changed(tmp_path, sample_root, tiny_embedder, workers):
    manifest, root = (SAMPLE_CSV, sample_root)
    with Library(tmp_path / "home") as lib:
        ingest(lib, tiny_embedder, manifest, root)
        before = snapshot(lib)
    # Add new work, so that a wrongly accepted run would visibly change something.
    (root / "SMP-PHOTO-01" / "1.jpg").write_bytes((SAMPLE_IMAGES / "SMP-PAINT-01" / "2.jpg").read_bytes())
    impostor = CountingEmbedder(tiny_embedder, other_weights(tiny_embedder.description))
    with Library(tmp_path / "home") as lib:
        with pytest.raises(IndexMismatchError) as info:
            ingest(lib, impostor, manifest, root, workers=workers)
        msg = str(info.value)
        assert str(lib.home) in msg
        assert tiny_embedder.description.weights_sha256[:12] in msg and "000000000000" in msg
        assert "cannot be" in msg and "compared" in msg
        assert impostor.embedded == 0
        assert snapshot(lib) == before
        assert_healthy(lib)
    with Library(tmp_path / "home") as lib:
        assert snapshot(lib) == before


def test_different_model_and_dimension_refused(tmp_path, sample_root, tiny_embedder, offline_embedder):
    with Library(tmp_path / "home") as lib:
        ingest(lib, tiny_embedder, SAMPLE_CSV, sample_root)
        before = snapshot(lib)
    with Library(tmp_path / "home") as lib:
        with pytest.raises(IndexMismatchError) as info:
            ingest(lib, offline_embedder, SAMPLE_CSV, sample_root)
        msg = str(info.value)
        assert tiny_embedder.description.label() in msg and offline_embedder.description.label() in msg
        assert "dim 32" in msg and f"dim {offline_embedder.description.dim}" in msg
        assert "--home" in msg  # says what to do
        assert snapshot(lib) == before
        assert_healthy(lib)


def test_stale_faiss_file_is_reconciled_on_open(tmp_path, sample_root, tiny_embedder):
    """A kill between the catalogue commit and the index save leaves an older FAISS file behind."""
    home = tmp_path / "home"
    with Library(home) as lib:
        ingest(lib, tiny_embedder, SAMPLE_CSV, sample_root)
    old_index = Home(home).vectors.read_bytes()
    old_manifest = manifest_path(Home(home).vectors).read_bytes()
    (sample_root / "SMP-COIN-09" / "1.jpg").write_bytes((SAMPLE_IMAGES / "SMP-PHOTO-01" / "1.jpg").read_bytes())
    with Library(home) as lib:
        (old,) = lib.catalogue.object_images("SMP-COIN-09")
        rep = ingest(lib, tiny_embedder, SAMPLE_CSV, sample_root)
        assert rep.images_replaced == 1
        (new,) = lib.catalogue.object_images("SMP-COIN-09")
        want = np.sort(lib.vectors.ids())
    # Put the pre-change index back, as if the final save never happened.
    Home(home).vectors.write_bytes(old_index)
    manifest_path(Home(home).vectors).write_bytes(old_manifest)
    with Library(home) as lib:
        ids = lib.vectors.ids()
        np.testing.assert_array_equal(np.sort(ids), want)
        assert old.image_id not in ids.tolist() and new.image_id in ids.tolist()
        assert_healthy(lib)
        assert json.loads(manifest_path(Home(home).vectors).read_text())["generation"] == lib.catalogue.generation
