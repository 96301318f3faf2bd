"""Vector stores: IVF-PQ and HNSW with exact re-scoring against brute force, exact filters, adds and
deletes without retraining, persistence that never disturbs a reader of older files, filter codes."""

from __future__ import annotations

import numpy as np
import pytest

from artefact.index.catalogue import Catalogue, SearchFilters
from artefact.index.records import ObjectRecord
from artefact.index.stores import FlatStore, HnswStore, IdSelection, IvfPqStore, VectorStore, open_store
from artefact.index.stores import files
from artefact.index.stores.attributes import RecordAttributes
from artefact.index.stores.optimize import tune

DIM = 32
N = 4000


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, clusters: int = 60) -> np.ndarray:
    """Unit vectors in clusters (like embeddings of photos of similar objects), not uniform noise."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    xb = clustered(rng, N)
    ids = (np.arange(N, dtype=np.int64) * 3 + 5)  # sparse ids, as after removals
    rng.shuffle(ids)
    # Queries: new photos of catalogued things (near catalogue vectors, not equal to them).
    xq = xb[rng.choice(N, 20, replace=False)] + 0.2 * rng.standard_normal((20, DIM)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    return ids, xb, xq


def truth(ids: np.ndarray, xb: np.ndarray, xq: np.ndarray, k: int, allowed: np.ndarray | None = None):
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    S = xq @ xb[keep].T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, order, axis=1), ids[keep][order]


def make(kind: str, ids: np.ndarray, xb: np.ndarray) -> VectorStore:
    if kind == "ivf-pq":
        store = IvfPqStore.train(DIM, xb, {"nlist": 32, "pq_m": 8, "pq_bits": 4, "nprobe": 8, "shortlist": 80})
    elif kind == "hnsw":
        store = HnswStore.train(DIM, xb, {"m": 16, "ef_search": 64, "shortlist": 80})
    else:
        store = FlatStore(DIM)
    store.add(ids, xb)
    return store


@pytest.fixture(scope="module", params=["ivf-pq", "hnsw"])
def store(request, data):
    ids, xb, _ = data
    return make(request.param, ids, xb)


def recall(got, want) -> float:
    return float(np.mean([len(np.intersect1d(g, w)) / len(w) for g, w in zip(got, want)]))


def test_selection_bitmap_round_trip():
    ids = np.array([0, 3, 8, 9, 1000], np.int64)
    sel = IdSelection.from_ids(ids)
    assert sel.count == 5
    np.testing.assert_array_equal(sel.ids(), ids)
    np.testing.assert_array_equal(sel.contains(np.array([0, 1, 3, 999, 1000, 1001, -4])),
                                  [True, False, True, False, True, False, False])


def test_compressed_search_is_close_to_exact_and_scores_are_exact(store, data):
    ids, xb, xq = data
    _, want = truth(ids, xb, xq, 10)
    hits = store.search(xq, 10)
    assert recall([i for _, i in hits], want) >= 0.9
    by_id = dict(zip(ids.tolist(), xb))
    for (D, I), q in zip(hits, xq):
        assert len(I) == 10 and I.dtype == np.int64
        # Re-scored from the full vectors: the similarities are exact, in order.
        np.testing.assert_allclose(D, [float(by_id[int(i)] @ q) for i in I], atol=1e-5)
        assert np.all(np.diff(D) <= 1e-7)


@pytest.mark.parametrize("share", [0.002, 0.02, 0.3])
def test_filtered_search_returns_k_allowed_results(store, data, share):
    """Narrow filters too: the scan widens, then goes exhaustive, so k allowed come back whenever k exist."""
    ids, xb, xq = data
    rng = np.random.default_rng(int(share * 1000))
    allowed = rng.choice(ids, size=max(12, int(share * len(ids))), replace=False)
    sel = IdSelection.from_ids(allowed)
    store.params["exact_below"] = 0  # force the index path even for tiny selections
    try:
        hits = store.search(xq, 10, sel)
    finally:
        store.params.pop("exact_below")
    _, want = truth(ids, xb, xq, 10, allowed)
    for D, I in hits:
        assert len(I) == 10
        assert np.isin(I, allowed).all()
    assert recall([i for _, i in hits], want) >= 0.85
    # Fewer allowed than k: all of them, nothing else.
    few = IdSelection.from_ids(allowed[:3])
    for D, I in store.search(xq[:3], 10, few):
        assert sorted(I.tolist()) == sorted(allowed[:3].tolist())


def test_adds_and_deletes_need_no_retraining(data):
    ids, xb, xq = data
    store = make("ivf-pq", ids[:3000], xb[:3000])
    trained = store.build.trained_on
    store.add(ids[3000:], xb[3000:])
    gone = ids[:50]
    assert store.remove(np.concatenate([gone, [10**9]])) == 50
    assert store.ntotal == N - 50 and store.build.trained_on == trained
    for i, x in zip(ids[3000:3010], xb[3000:3010]):
        D, I = store.search(x[None], 1)[0]
        assert I[0] == i and abs(D[0] - 1) < 1e-5  # a new photo finds itself
    hits = store.search(xb[:50], 5)
    assert not np.isin(np.concatenate([I for _, I in hits]), gone).any()
    with pytest.raises(ValueError):
        store.add(ids[3000:3001], xb[3000:3001])  # an id that is present already


def test_hnsw_deletes_are_tombstones_that_searches_skip(data):
    ids, xb, _ = data
    store = make("hnsw", ids, xb)
    assert store.remove(ids[:20]) == 20
    assert store.describe()["tombstones"] == 20 and store.ntotal == N - 20
    for x in xb[:20]:
        _, I = store.search(x[None], 5)[0]
        assert not np.isin(I, ids[:20]).any() and len(I) == 5


def test_save_and_load_round_trip_leaves_readers_of_old_files_working(tmp_path, data):
    ids, xb, xq = data
    path = tmp_path / "vectors.faiss"
    first = make("ivf-pq", ids[:2000], xb[:2000])
    first.save(path, {"generation": 1})
    reader, manifest = open_store(path)
    assert reader.kind == "ivf-pq" and manifest["generation"] == 1 and reader.ntotal == 2000
    before = reader.search(xq, 10)
    # A writer adds, saves twice (new files each time; the old ones are collected).
    first.add(ids[2000:], xb[2000:])
    first.save(path, {"generation": 2})
    first.remove(ids[:10])
    first.save(path, {"generation": 3})
    after = reader.search(xq, 10)  # the reader's mapped files were unlinked, not changed
    for (d1, i1), (d2, i2) in zip(before, after):
        np.testing.assert_array_equal(i1, i2)
    again, manifest = open_store(path)
    assert manifest["generation"] == 3 and again.ntotal == N - 10
    np.testing.assert_array_equal(np.sort(again.ids()), np.sort(ids[10:]))
    np.testing.assert_allclose(again.reconstruct(ids[10:20]), xb[10:20], atol=1e-6)
    # Exactly the files the manifest names are left: the older saves' were collected.
    leftovers = {p.name for p in tmp_path.iterdir() if p.name.startswith("vectors-")}
    assert leftovers == files.referenced(manifest)
    assert sum(n.endswith(".float32") for n in leftovers) == 2  # one segment per save that added vectors


def test_tune_reaches_the_target_recall(data):
    ids, xb, _ = data
    store = make("ivf-pq", ids, xb)
    store.params.update({"nprobe": 1, "shortlist": 20})
    report = tune(store, target=0.95, holdout=100)
    assert report["recall_at_10"] >= 0.95
    assert store.build.recall_at_10 == report["recall_at_10"] and store.params["nprobe"] > 1
    assert 0 <= report["filtered_recall_at_10"] <= 1


# ----------------------------------------------------------------------------- filter codes

def catalogue_with_objects(path, n: int = 300) -> Catalogue:
    cat = Catalogue(path)
    countries = ["Italy", "GREECE", "Ελλάδα", "France", ""]
    statuses = ["stolen", "looted", "missing", "recovered"]
    with cat.transaction():
        for o in range(n):
            fields = {"status": statuses[o % 4], "country": countries[o % 5], "object_type": "coin" if o % 3 else "Vase",
                      "source": "ICOM" if o % 7 == 0 else "police"}
            pk, _ = cat.upsert_object(ObjectRecord(f"O{o:04d}", fields))
            for j in range(1 + o % 3):
                cat.add_image(pk, f"O{o}/{j}.jpg", f"{o}-{j}", 1, 0, 8, 8, np.ones(4, np.float32))
    return cat


FILTERS = [
    SearchFilters(),
    SearchFilters(include_recovered=True),
    SearchFilters(country=("italy",)),
    SearchFilters(country=("ελλάδα", "greece")),
    SearchFilters(status=("recovered",)),
    SearchFilters(status=("stolen", "recovered"), object_type=("vase",)),
    SearchFilters(source=("icom",), country=("France",), include_recovered=True),
    SearchFilters(country=("Atlantis",)),
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: str(f.to_dict()))
def test_filter_codes_select_what_sql_selects(tmp_path, filters):
    cat = catalogue_with_objects(tmp_path / "c.sqlite")
    attrs = RecordAttributes.build(cat.db)
    np.testing.assert_array_equal(np.sort(attrs.ids(filters)), np.sort(cat.image_ids(filters)))
    cat.close()


def test_filter_codes_follow_changes_and_survive_a_save(tmp_path):
    cat = catalogue_with_objects(tmp_path / "c.sqlite")
    attrs = RecordAttributes.build(cat.db)
    attrs.save(tmp_path / "filters.npz")
    with cat.transaction():
        cat.set_status("O0001", "recovered")  # now excluded by default
        cat.remove_object("O0002")
        pk, _ = cat.upsert_object(ObjectRecord("NEW", {"country": "Peru"}))
        cat.add_image(pk, "new.jpg", "new", 1, 0, 8, 8, np.ones(4, np.float32))
    loaded = RecordAttributes.load(tmp_path / "filters.npz")
    assert loaded is not None
    for a in (attrs, loaded):
        assert a.follow(cat.db)
        assert not a.follow(cat.db)  # nothing new
        for f in FILTERS + [SearchFilters(country=("peru",))]:
            np.testing.assert_array_equal(np.sort(a.ids(f)), np.sort(cat.image_ids(f)))
    cat.close()
