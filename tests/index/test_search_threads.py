"""A search with few queries runs FAISS on the calling thread alone; batches keep every thread;
the setting is the calling thread's own and is restored."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from artefact.index.stores.threads import FEW_QUERIES, search_threads


def test_few_queries_narrow_only_this_thread_and_restore() -> None:
    faiss.omp_set_num_threads(2)
    seen: dict[str, int] = {}
    inside = threading.Event()
    leave = threading.Event()

    def searching() -> None:
        with search_threads(1):
            seen["inside"] = faiss.omp_get_max_threads()
            inside.set()
            leave.wait(10)
        seen["after"] = faiss.omp_get_max_threads()

    t = threading.Thread(target=searching)
    t.start()
    assert inside.wait(10)
    seen["other thread meanwhile"] = faiss.omp_get_max_threads()
    leave.set()
    t.join()
    assert seen == {"inside": 1, "other thread meanwhile": 2, "after": 2}, seen
    with search_threads(FEW_QUERIES + 1):
        assert faiss.omp_get_max_threads() == 2  # a batch keeps them


def test_a_store_search_answers_the_same_on_one_thread() -> None:
    from artefact.index.stores.flat import FlatStore
    from artefact.index.vectors import VectorIndex

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((2000, 16)).astype(np.float32)
    store = FlatStore.from_index(VectorIndex(16))
    store.add(np.arange(2000, dtype=np.int64), xb)
    xq = rng.standard_normal((8, 16)).astype(np.float32)
    batch = store.search(xq, 5)
    single = [store.search(q[None], 5)[0] for q in xq]
    for (d1, i1), (d2, i2) in zip(batch, single):
        assert np.array_equal(i1, i2) and np.allclose(d1, d2)
