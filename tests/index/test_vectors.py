"""VectorIndex: exact search against FAISS / numpy ground truth, selectors, removal, persistence."""

from __future__ import annotations

import json
import os

import faiss
import numpy as np
import pytest

from artefact.embed import fileio
from artefact.index.errors import CatalogueError
from artefact.index.vectors import VectorIndex, manifest_path

DIM = 24
N = 600


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    xb = unit_vectors(rng, N)
    # Non-contiguous ids, some beyond 32 bits, in no particular order.
    ids = rng.choice(np.arange(1, 50_000, dtype=np.int64), size=N, replace=False) * 7 + (1 << 33)
    rng.shuffle(ids)
    xq = unit_vectors(rng, 9)
    return ids.astype(np.int64), xb, xq


@pytest.fixture
def index(data) -> VectorIndex:
    ids, xb, _ = data
    vi = VectorIndex(DIM)
    vi.add(ids, xb)
    return vi


def brute_force(xq: np.ndarray, ids: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids and scores by inner product, per query row."""
    S = xq @ xb.T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, order, axis=1), ids[order]


def test_search_equals_faiss_flat_ip_ground_truth(index, data):
    ids, xb, xq = data
    flat = faiss.IndexFlatIP(DIM)
    flat.add(xb)
    D_ref, I_ref = flat.search(xq, 15)
    results = index.search(xq, 15)
    assert len(results) == len(xq)
    for (D, I), d_ref, i_ref in zip(results, D_ref, I_ref):
        assert I.dtype == np.int64
        assert len(I) == 15
        np.testing.assert_array_equal(I, ids[i_ref])  # positions mapped to our ids
        np.testing.assert_allclose(D, d_ref, rtol=0, atol=1e-5)
        assert np.all(np.diff(D) <= 1e-7), "scores must be sorted best first"
    assert index.ntotal == N
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())


def test_search_equals_numpy_brute_force(index, data):
    ids, xb, xq = data
    D_ref, I_ref = brute_force(xq, ids, xb, 10)
    for (D, I), d_ref, i_ref in zip(index.search(xq, 10), D_ref, I_ref):
        np.testing.assert_array_equal(I, i_ref)
        np.testing.assert_allclose(D, d_ref, atol=1e-5)


def test_allowed_selector_returns_true_top_k_within_subset(index, data):
    ids, xb, xq = data
    rng = np.random.default_rng(7)
    # Allow a subset that deliberately excludes each query's unrestricted top 50.
    unrestricted = {int(i) for _, I in index.search(xq, 50) for i in I}
    pool = np.asarray([i for i in ids if int(i) not in unrestricted], dtype=np.int64)
    allowed = rng.choice(pool, size=120, replace=False)
    mask = np.isin(ids, allowed)
    D_ref, I_ref = brute_force(xq, ids[mask], xb[mask], 10)
    for (D, I), d_ref, i_ref in zip(index.search(xq, 10, allowed=allowed), D_ref, I_ref):
        assert len(I) == 10, "a filtered search must still fill k from the allowed set"
        assert set(I.tolist()) <= set(allowed.tolist())
        np.testing.assert_array_equal(I, i_ref)
        np.testing.assert_allclose(D, d_ref, atol=1e-5)


def test_excluded_selector_returns_true_top_k_outside_excluded(index, data):
    ids, xb, xq = data
    # Exclude every query's unrestricted top 30 plus a random extra slice.
    top = {int(i) for _, I in index.search(xq, 30) for i in I}
    extra = set(np.random.default_rng(3).choice(ids, size=100, replace=False).tolist())
    excluded = np.asarray(sorted(top | extra), dtype=np.int64)
    mask = ~np.isin(ids, excluded)
    D_ref, I_ref = brute_force(xq, ids[mask], xb[mask], 10)
    for (D, I), d_ref, i_ref in zip(index.search(xq, 10, excluded=excluded), D_ref, I_ref):
        assert len(I) == 10
        assert not set(I.tolist()) & set(excluded.tolist())
        np.testing.assert_array_equal(I, i_ref)
        np.testing.assert_allclose(D, d_ref, atol=1e-5)


def test_empty_allowed_and_empty_index_return_nothing(index, data):
    _, _, xq = data
    for D, I in index.search(xq, 5, allowed=np.zeros(0, np.int64)):
        assert len(D) == 0 and len(I) == 0
    for D, I in VectorIndex(DIM).search(xq[:2], 5):
        assert len(I) == 0
    # An empty exclusion list is no restriction.
    base = index.search(xq, 5)
    for (_, I0), (_, I1) in zip(base, index.search(xq, 5, excluded=np.zeros(0, np.int64))):
        np.testing.assert_array_equal(I0, I1)


def test_padding_trimmed_when_k_exceeds_candidates(index, data):
    ids, xb, xq = data
    # k > n for the whole index.
    small = VectorIndex(DIM)
    small.add(ids[:7], xb[:7])
    for D, I in small.search(xq, 50):
        assert len(I) == 7 and len(D) == 7
        assert (I >= 0).all()
        assert sorted(I.tolist()) == sorted(ids[:7].tolist())
    # k > number of allowed ids inside a big index: FAISS pads with -1, which must go.
    allowed = ids[[3, 50, 400]]
    for D, I in index.search(xq, 20, allowed=allowed):
        assert len(I) == 3 and len(D) == 3
        assert sorted(I.tolist()) == sorted(allowed.tolist())
    # Excluding all but two.
    for D, I in index.search(xq, 20, excluded=ids[2:]):
        assert sorted(I.tolist()) == sorted(ids[:2].tolist())


def test_add_rejects_wrong_dimension():
    vi = VectorIndex(DIM)
    with pytest.raises(ValueError, match="dimension"):
        vi.add(np.array([1], np.int64), np.zeros((1, DIM + 1), np.float32))
    assert vi.ntotal == 0


def test_remove(index, data):
    ids, xb, xq = data
    gone = ids[:100]
    assert index.remove(gone) == 100
    assert index.ntotal == N - 100
    assert not set(index.ids().tolist()) & set(gone.tolist())
    # Removing again (or unknown ids) removes nothing.
    assert index.remove(gone[:5]) == 0
    assert index.remove(np.zeros(0, np.int64)) == 0
    D_ref, I_ref = brute_force(xq, ids[100:], xb[100:], 10)
    for (D, I), i_ref in zip(index.search(xq, 10), I_ref):
        np.testing.assert_array_equal(I, i_ref)
    # The remaining vectors are still reachable by id.
    np.testing.assert_allclose(index.reconstruct(ids[100:105]), xb[100:105], atol=1e-7)


def test_save_load_round_trip_is_atomic_and_described(index, data, tmp_path):
    ids, xb, xq = data
    path = tmp_path / "vectors.faiss"
    model = {"backend": "test", "model_name": "m", "dim": DIM}
    index.save(path, {"generation": 42, "model": model})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.faiss", "vectors.json"], "temp files left"

    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["dim"] == DIM
    assert manifest["metric"] == "inner_product"
    assert manifest["count"] == N
    assert manifest["generation"] == 42
    assert manifest["model"] == model

    loaded, m2 = VectorIndex.load(path)
    assert m2 == manifest
    assert loaded.dim == DIM and loaded.ntotal == N
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(ids))
    for (D0, I0), (D1, I1) in zip(index.search(xq, 10), loaded.search(xq, 10)):
        np.testing.assert_array_equal(I0, I1)
        np.testing.assert_allclose(D0, D1, atol=0)

    # Overwrite after a removal: the new file replaces the old one whole.
    index.remove(ids[:10])
    index.save(path, {"generation": 43, "model": model})
    loaded, m3 = VectorIndex.load(path)
    assert m3["count"] == N - 10 and m3["generation"] == 43
    assert loaded.ntotal == N - 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.faiss", "vectors.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(index, tmp_path, monkeypatch):
    path = tmp_path / "vectors.faiss"
    index.save(path, {"generation": 1, "model": None})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", boom)
    index.remove(index.ids()[:3])
    with pytest.raises(OSError, match="disk full"):
        index.save(path, {"generation": 2, "model": None})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.faiss", "vectors.json"]
    assert json.loads(manifest_path(path).read_text())["generation"] == 1


def test_load_garbage_raises_catalogue_error(tmp_path):
    path = tmp_path / "vectors.faiss"
    path.write_bytes(b"not a faiss index at all")
    manifest_path(path).write_text("{}")
    with pytest.raises(CatalogueError, match="cannot read vector index"):
        VectorIndex.load(path)
    os.unlink(manifest_path(path))
    with pytest.raises(CatalogueError):
        VectorIndex.load(path)
