"""How many OpenMP threads FAISS uses for a search.

FAISS parallelises even a single query's search over its OpenMP threads. On a laptop's
few cores, waking them (the service sets OMP_WAIT_POLICY=PASSIVE, so idle threads sleep)
costs more than the split saves: at a million photos under IVF-PQ on 2 cores, one query
took 15.8 ms wall on two threads and 8.8 ms on one; a 10k flat search is the same on
both (benchmarks/README.md, issue 11). Batches (evaluation, tuning) keep every thread.
OpenMP's thread count is a per-thread setting, so one search narrowing its own thread
does not slow an index build or a batch running in another.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import faiss

FEW_QUERIES = 4  # up to this many query vectors (one officer's photos) run on the calling thread alone


@contextmanager
def search_threads(n_queries: int) -> Iterator[None]:
    """Run the FAISS calls inside on one OpenMP thread when the search has few queries."""
    if n_queries > FEW_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
