"""Library-level store choice: flat up to a threshold, IVF-PQ beyond it; optimize swaps stores while
searches run, resumes a killed build, and keeps filters, the recovered exclusion, adds and deletes exact."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from artefact.embed.models import ModelDescription
from artefact.index.catalogue import SearchFilters
from artefact.index.library import Library
from artefact.index.records import ObjectRecord
from artefact.index.search import IMAGE, search_vectors
from artefact.index.stores import optimize as opt
from artefact.index.stores.optimize import StoreOptions

DIM = 32
COUNTRIES = ["Italy", "Greece", "Iraq", "Peru", "Atlantis"]
STATUSES = ["stolen", "looted", "missing", "recovered"]
OPTIONS = StoreOptions(flat_max=1000, holdout=80, target_recall=0.95)


def fake_model() -> ModelDescription:
    return ModelDescription("test", "synthetic", None, DIM, {"size": 8}, "synthetic-weights", False)


def photos(rng: np.random.Generator, n_objects: int, start: int = 0):
    """Objects with 1-3 photos each, clustered; fields cycle so every filter has members."""
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    out = []
    for o in range(start, start + n_objects):
        c = centres[o % 40] + 0.5 * rng.standard_normal(DIM).astype(np.float32)
        vecs = c + 0.25 * rng.standard_normal((1 + o % 3, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        fields = {"country": COUNTRIES[o % 5], "status": STATUSES[(o // 5) % 4], "object_type": "coin" if o % 2 else "vase"}
        out.append((f"O{o:05d}", fields, vecs))
    return out


def add_objects(lib: Library, objects) -> None:
    """Catalogue rows, then the in-memory index, then save: the way ingest writes."""
    lib.vectors
    ids, vecs = [], []
    with lib.catalogue.transaction():
        for oid, fields, mat in objects:
            pk, _ = lib.catalogue.upsert_object(ObjectRecord(oid, fields))
            for n, v in enumerate(mat):
                ids.append(lib.catalogue.add_image(pk, f"{oid}/{n}.jpg", f"{oid}-{n}", 1, 0, 8, 8, v))
                vecs.append(v)
    lib.add_vectors(np.asarray(ids, np.int64), np.asarray(vecs, np.float32))
    lib.mark_synced()
    lib.save()


def new_library(home: Path, objects, options: StoreOptions = OPTIONS) -> Library:
    lib = Library(home, store_options=options)
    lib.bind_model(fake_model())
    add_objects(lib, objects)
    return lib


def brute_force(objects, q, allowed, k):
    scored = sorted(((float((m @ q).max()), oid) for oid, f, m in objects if allowed(f)), key=lambda t: (-t[0], t[1]))
    return [oid for _, oid in scored[:k]]


def allowed_by(filters: SearchFilters):
    def ok(f):
        for name in ("status", "country", "object_type"):
            vals = [v.lower() for v in getattr(filters, name)]
            if vals and f[name].lower() not in vals:
                return False
        if not filters.include_recovered and "recovered" not in [s.lower() for s in filters.status]:
            return f["status"] != "recovered"
        return True
    return ok


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """A library past the threshold, optimized into IVF-PQ."""
    rng = np.random.default_rng(11)
    objects = photos(rng, 700)  # about 1400 photos
    lib = new_library(tmp_path_factory.mktemp("lib") / "home", objects)
    assert lib.vectors.kind == "flat"
    report = lib.optimize_if_kind_changes()
    assert report is not None and report["kind"] == "ivf-pq"
    yield lib, objects, rng
    lib.close()


def test_type_switches_at_the_threshold(tmp_path):
    rng = np.random.default_rng(3)
    objects = photos(rng, 300)  # about 600 photos: under the threshold
    lib = new_library(tmp_path / "home", objects)
    assert lib.vectors.kind == "flat" and lib.optimize_due() == []
    assert lib.optimize_if_kind_changes() is None
    more = photos(rng, 300, start=300)  # now about 1200
    add_objects(lib, more)
    assert any("should be ivf-pq" in r for r in lib.optimize_due())
    report = lib.optimize_if_kind_changes()
    assert report is not None and report["recall_at_10"] >= OPTIONS.target_recall
    stats = lib.stats()["index"]
    assert stats["kind"] == "ivf-pq" and stats["params"]["nprobe"] >= 1 and stats["optimize_due"] == []
    assert stats["build"]["recall_at_10"] == report["recall_at_10"] and stats["build"]["target_recall"] == 0.95
    lib.close()
    # Reopened: the compressed store is what loads, consistent with the catalogue.
    again = Library(tmp_path / "home", store_options=OPTIONS)
    assert again.vectors.kind == "ivf-pq" and again.check() == []
    # Pinning flat overrides the size rule, and the pin is remembered.
    again.optimize(kind="flat")
    assert again.vectors.kind == "flat" and again.pinned_index_type == "flat"
    assert again.optimize_if_kind_changes() is None and again.optimize_due() == []
    again.close()


@pytest.mark.parametrize("filters", [
    SearchFilters(),
    SearchFilters(include_recovered=True),
    SearchFilters(country=("atlantis",)),
    SearchFilters(country=("Peru", "iraq"), object_type=("coin",)),
    SearchFilters(status=("recovered",)),
], ids=lambda f: str(f.to_dict()))
def test_filtered_search_under_the_compressed_index(compressed, filters):
    lib, objects, rng = compressed
    ok = allowed_by(filters)
    by_id = {oid: f for oid, f, _ in objects}
    n_allowed = sum(ok(f) for _, f, _ in objects)
    for oid, _, mat in objects[:40:4]:
        q = mat[0]
        got = [m.record.object_id for m in search_vectors(lib, q[None], [IMAGE], k=10, filters=filters)]
        assert len(got) == min(10, n_allowed)  # k allowed results whenever k exist
        assert all(ok(by_id[g]) for g in got)  # recovered ones never, unless asked for
        want = brute_force(objects, q, ok, 10)
        assert len(set(got) & set(want)) >= 8


def test_status_change_takes_effect_at_once(compressed):
    lib, objects, _ = compressed
    oid, fields, mat = next(o for o in objects if o[1]["status"] == "stolen")
    assert search_vectors(lib, mat[:1], [IMAGE], k=1)[0].record.object_id == oid
    lib.set_status(oid, "recovered")
    try:
        assert oid not in [m.record.object_id for m in search_vectors(lib, mat[:1], [IMAGE], k=10)]
    finally:
        lib.set_status(oid, "stolen")
    assert search_vectors(lib, mat[:1], [IMAGE], k=1)[0].record.object_id == oid


def test_adds_and_deletes_after_optimize(compressed):
    lib, objects, rng = compressed
    trained = lib.vectors.describe()["build"]["id"]
    new = photos(rng, 5, start=5000)
    for o in new:
        o[1]["status"] = "stolen"
    add_objects(lib, new)
    assert lib.vectors.describe()["build"]["id"] == trained  # no retraining
    for oid, _, mat in new:
        assert search_vectors(lib, mat[:1], [IMAGE], k=1)[0].record.object_id == oid
    gone, _, gone_vecs = new[0]
    lib.remove_object(gone)
    assert gone not in [m.record.object_id for m in search_vectors(lib, gone_vecs[:1], [IMAGE], k=10)]
    assert lib.check() == []
    again = Library(lib.home, store_options=OPTIONS)
    assert again.vectors.kind == "ivf-pq" and again.check() == []
    assert search_vectors(again, new[1][2][:1], [IMAGE], k=1)[0].record.object_id == new[1][0]
    assert gone not in [m.record.object_id for m in search_vectors(again, gone_vecs[:1], [IMAGE], k=10)]
    again.close()


def test_optimize_while_searches_run(tmp_path):
    """A service searches its own Library (own connection, as another process) while `index optimize`
    rebuilds the store through another: no search fails, and the service takes up the new store."""
    rng = np.random.default_rng(5)
    objects = photos(rng, 700)
    new_library(tmp_path / "home", objects).close()
    service = Library(tmp_path / "home", store_options=OPTIONS)
    errors: list[BaseException] = []
    done = threading.Event()
    searched = [0]
    kinds: set[str] = set()
    probes = [(oid, mat[:1]) for oid, f, mat in objects if f["status"] != "recovered"][:20]

    def searcher() -> None:
        while not done.is_set() or "ivf-pq" not in kinds:
            for oid, q in probes:
                try:
                    service.refresh()  # as the service does before each search
                    kinds.add(service.vectors.kind)
                    got = search_vectors(service, q, [IMAGE], k=5, filters=SearchFilters(include_recovered=True))
                    if got[0].record.object_id != oid:
                        raise AssertionError(f"{oid} not first: {[m.record.object_id for m in got]}")
                    searched[0] += 1
                except BaseException as exc:  # noqa: BLE001 - collected and reported below
                    errors.append(exc)
                    return
            if searched[0] > 100_000:
                return
    t = threading.Thread(target=searcher)
    t.start()
    try:
        with Library(tmp_path / "home", store_options=OPTIONS) as cli:
            report = cli.optimize(kind="ivf-pq")
    finally:
        done.set()
        t.join()
    assert errors == [] and searched[0] > 0
    assert report["kind"] == "ivf-pq" and kinds == {"flat", "ivf-pq"}  # served by the old, then the new
    assert service.vectors.kind == "ivf-pq" and service.check() == []
    service.close()


def test_a_killed_build_resumes_and_the_old_store_serves_meanwhile(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    objects = photos(rng, 700)
    lib = new_library(tmp_path / "home", objects)
    monkeypatch.setattr(opt, "CHECKPOINT_EVERY", 400)

    def killer(stage: str, done: int, total: int) -> None:
        if stage == "adding" and done > 600:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lib.optimize(kind="ivf-pq", progress=killer)
    assert lib.vectors.kind == "flat"  # the old store still answers
    state = opt.BuildState.load(opt.files.build_folder(lib.index_path))
    assert state is not None and state.stage == "filling" and state.last_id > 0
    oid, _, mat = objects[3]
    assert search_vectors(lib, mat[:1], [IMAGE], k=1, filters=SearchFilters(include_recovered=True))[0].record.object_id == oid
    seen: list[int] = []
    lib.optimize(kind="ivf-pq", progress=lambda stage, done, total: seen.append(done) if stage == "adding" else None)
    assert seen and min(seen) > 400  # continued after the checkpoint, not from the start
    assert lib.vectors.kind == "ivf-pq" and lib.check() == []
    assert not opt.files.build_folder(lib.index_path).exists()
    lib.close()


def test_optimize_tunes_a_store_smaller_than_any_shortlist(tmp_path: Path) -> None:
    """A pinned HNSW on a few dozen photos: tuning measures the first shortlist (it used to try none and fail)."""
    objects = photos(np.random.default_rng(5), 20)
    lib = new_library(tmp_path / "home", objects)
    try:
        report = lib.optimize("hnsw")
        assert report["kind"] == "hnsw" and report["recall_at_10"] >= 0.95, report
        assert lib.stats()["index"]["params"]["shortlist"] == opt.SHORTLISTS[0]
    finally:
        lib.close()
