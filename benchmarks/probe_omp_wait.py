#!/usr/bin/env python
"""A/B probe for OpenMP spin-waiting: single-photo embed and FAISS search latency, alone and interleaved.

  .venv/bin/python benchmarks/probe_omp_wait.py                          # library default (OMP_WAIT_POLICY unset)
  OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/probe_omp_wait.py  # idle OpenMP threads sleep
"""
import time, numpy as np, faiss, torch, sys
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent))
from _common import load_model
e = load_model('efficientnet-lite0', batch_size=32)
x = [np.random.randint(0,255,(224,224,3),np.uint8)]
idx = faiss.IndexFlatIP(1280); idx.add(np.random.rand(2000,1280).astype('float32'))
q = np.random.rand(1,1280).astype('float32')
e.embed_prepared(x)
def t(f):
    t0=time.perf_counter(); f(); return round((time.perf_counter()-t0)*1e3,1)
print('torch threads', torch.get_num_threads(), 'faiss omp', faiss.omp_get_max_threads())
print('embed alone   ', [t(lambda: e.embed_prepared(x)) for _ in range(5)])
print('faiss alone   ', [t(lambda: idx.search(q, 40)) for _ in range(5)])
print('interleaved e ', [ (idx.search(q,40), t(lambda: e.embed_prepared(x)))[1] for _ in range(5)])
print('interleaved f ', [ (e.embed_prepared(x), t(lambda: idx.search(q,40)))[1] for _ in range(5)])
