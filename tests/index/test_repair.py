"""The vector index is a cache of the catalogue (issue 10, finding 8): a truncated, an outdated and a
deleted `vectors.faiss` each come back to a correct index on open; `check` only reads; `repair`
rebuilds under the writer lock."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from artefact.index.errors import CatalogueError
from artefact.index.home import Home
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
from artefact.index.vectors import manifest_path

from home_snapshot import home_snapshot
from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES


@dataclass(frozen=True)
class Built:
    home: Path
    old_index: bytes  # vectors.faiss as it was after the first 8 objects
    old_manifest: bytes  # and its manifest
    photos: int


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_embedder) -> Built:
    """The sample catalogue indexed in two steps; the index files of the first step kept aside."""
    base = tmp_path_factory.mktemp("repair")
    with SAMPLE_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    first = base / "first.csv"
    with first.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[:9])  # header + 8 objects
    home = base / "home"
    paths = Home(home)
    with Library(home) as lib:
        ingest_manifest(lib, tiny_embedder, first, SAMPLE_IMAGES, workers=0, progress=False)
    old_index, old_manifest = paths.vectors.read_bytes(), manifest_path(paths.vectors).read_bytes()
    with Library(home) as lib:
        ingest_manifest(lib, tiny_embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
        photos = lib.catalogue.counts()["images"]
        assert lib.check() == []
    assert photos == 33
    return Built(home, old_index, old_manifest, photos)


@pytest.fixture
def home(built: Built, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(built.home, target)
    return target


def truncate(home: Path, built: Built) -> str:
    path = Home(home).vectors
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "truncated"


def outdate(home: Path, built: Built) -> str:
    """An older file with fewer vectors beside a current manifest (a rename lost in a crash)."""
    Home(home).vectors.write_bytes(built.old_index)
    return "outdated"


def delete(home: Path, built: Built) -> str:
    Home(home).vectors.unlink()
    return "deleted"


def swap_one_id(home: Path, built: Built) -> str:
    """As many vectors as the manifest says, but one under an id the catalogue does not have: only the ids tell."""
    import faiss

    path = Home(home).vectors
    index = faiss.read_index(str(path))
    idmap = faiss.downcast_index(index)
    stored = faiss.vector_to_array(idmap.id_map)
    vec = idmap.index.reconstruct(0)
    idmap.remove_ids(np.array([stored[0]], dtype=np.int64))
    idmap.add_with_ids(vec[None, :], np.array([int(stored.max()) + 1000], dtype=np.int64))
    faiss.write_index(idmap, str(path))
    return "swapped"


FAULTS = [truncate, outdate, delete, swap_one_id]


def assert_matches_catalogue(lib: Library) -> None:
    """Same ids, same vectors, and every photo finds itself first."""
    want = np.sort(lib.catalogue.image_ids())
    store = lib.vectors
    assert store.ntotal == len(want)
    assert np.array_equal(np.sort(store.ids()), want)
    for ids, mat in lib.catalogue.vectors():
        assert np.allclose(store.reconstruct(ids), mat, atol=1e-6)
        for i, v in zip(ids, mat):
            D, I = store.search(v[None, :], 1)[0]
            assert I[0] == i


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_a_damaged_index_comes_back_from_the_catalogue_on_open(home, built, fault):
    fault(home, built)
    with Library(home) as lib:
        assert_matches_catalogue(lib)
    with Library(home) as lib:  # and the repaired file was saved: a second open finds it whole
        assert lib.check() == []
        assert lib.vectors.ntotal == built.photos


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_open_says_what_differed_and_the_service_path_defers_the_rebuild(home, built, fault):
    fault(home, built)
    with Library(home) as lib:
        problem = lib.open_vectors(repair=False)
        assert problem, fault.__name__
        assert lib.rebuilding == problem
        with pytest.raises(CatalogueError) as err:  # never searched while it differs
            lib.vectors.search(np.zeros((1, 32), np.float32), 1)
        assert "rebuilding" in str(err.value)
        store, generation = lib.rebuild_vectors()
        lib.adopt_vectors(store, generation)
        assert lib.rebuilding is None
        assert_matches_catalogue(lib)


def test_a_healthy_index_is_not_rebuilt(home, built):
    with Library(home) as lib:
        assert lib.open_vectors(repair=False) is None
        assert lib.rebuilding is None and lib.vectors.ntotal == built.photos


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_check_reports_and_writes_nothing(home, built, fault):
    name = fault(home, built)
    before = home_snapshot(home)
    with Library(home) as lib:
        generation = lib.catalogue.generation
        problems = lib.check()
        assert lib.catalogue.generation == generation
    assert problems, name
    assert any(word in " ".join(problems) for word in ("unreadable", "missing", "holds", "vectors")), problems
    assert home_snapshot(home) == before


def test_check_of_an_old_index_with_its_old_manifest_writes_nothing(home, built):
    """The case that used to rewrite the manifest, without the writer lock, then print OK."""
    paths = Home(home)
    paths.vectors.write_bytes(built.old_index)
    manifest_path(paths.vectors).write_bytes(built.old_manifest)
    before = home_snapshot(home)
    with Library(home) as lib:
        problems = lib.check()
    assert problems and any("behind" in p or "no vector" in p for p in problems), problems
    assert home_snapshot(home) == before


def test_repair_rebuilds_under_the_writer_lock(home, built):
    truncate(home, built)
    before = home_snapshot(home)
    with Library(home) as holder, holder.writing():  # another writer (an ingest) is at work
        with Library(home) as lib:
            with pytest.raises(CatalogueError) as err:
                lib.repair()
            assert "writing" in str(err.value)
    assert home_snapshot(home) == before
    with Library(home) as lib:
        report = lib.repair()
        assert report["before"] and report["after"] == []
        assert_matches_catalogue(lib)
    with Library(home) as lib:
        assert lib.check() == []


def test_repair_of_a_healthy_index_changes_nothing_it_needs_not(home, built):
    with Library(home) as lib:
        report = lib.repair()
        assert report["before"] == [] and report["after"] == []
        assert_matches_catalogue(lib)
