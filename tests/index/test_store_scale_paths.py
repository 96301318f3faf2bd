"""What a million-photo build relies on: merging full-vector segments streams them, and a build's
checkpoints leave few enough segments that its first save merges nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artefact.index.stores import full_vectors as fv
from artefact.index.stores import optimize as opt
from artefact.index.stores.approximate import ApproximateStore
from artefact.index.stores.full_vectors import MAX_SEGMENTS, FullVectors

DIM = 16


class _Source:
    """A catalogue stand-in: ids and vectors in memory."""

    def __init__(self, ids: np.ndarray, xb: np.ndarray) -> None:
        self._ids, self._xb = ids, xb

    def image_ids(self) -> np.ndarray:
        return self._ids

    def vectors(self, image_ids=None):
        want = self._ids if image_ids is None else np.asarray(image_ids, np.int64)
        rows = np.searchsorted(self._ids, want)
        for start in range(0, len(want), 500):
            yield want[start : start + 500], self._xb[rows[start : start + 500]]


def test_merging_segments_streams_and_keeps_every_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    store = FullVectors(DIM)
    ids = np.arange(0, 3 * (MAX_SEGMENTS + 3), 3, dtype=np.int64)
    xb = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    reads: list[int] = []
    get = FullVectors.get

    def counting_get(self: FullVectors, wanted: np.ndarray) -> np.ndarray:
        reads.append(len(wanted))
        return get(self, wanted)

    monkeypatch.setattr(fv, "MERGE_CHUNK", 2)
    monkeypatch.setattr(FullVectors, "get", counting_get)  # only a merge reads rows during a save
    for n in range(len(ids)):  # one save per vector: more segments than MAX_SEGMENTS
        store.add(ids[n : n + 1], xb[n : n + 1])
        entry = store.save(tmp_path, "v")
    assert len(entry["segments"]) <= MAX_SEGMENTS
    assert reads and max(reads) <= 2  # copied two rows at a time, never all at once
    monkeypatch.setattr(FullVectors, "get", get)
    again = FullVectors.load(tmp_path, entry, DIM)
    np.testing.assert_array_equal(again.get(ids), xb)


def test_a_build_leaves_fewer_segments_than_a_save_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    ids = np.arange(1, n + 1, dtype=np.int64)
    xb = rng.standard_normal((n, DIM)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    monkeypatch.setattr(opt, "CHECKPOINT_EVERY", 100)  # 30 checkpoints if nothing bounded them
    merges: list[int] = []
    merge = FullVectors._merge_small

    def counting_merge(self: FullVectors, folder: Path, prefix: str) -> None:
        merges.append(self.rows)  # each merge rewrites every row but the largest segment's: quadratic
        merge(self, folder, prefix)

    monkeypatch.setattr(FullVectors, "_merge_small", counting_merge)
    store = opt.build_store(_Source(ids, xb), tmp_path / "vectors.faiss", DIM, "ivf-pq", opt.StoreOptions(),
                            params={"nlist": 16, "pq_m": 8})
    assert isinstance(store, ApproximateStore) and store.ntotal == n
    assert len(store.full.files()) <= MAX_SEGMENTS - 1 and merges == []
    np.testing.assert_allclose(store.reconstruct(ids[::97]), xb[::97], atol=1e-6)
