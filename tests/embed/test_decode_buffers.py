"""Decode workers reuse freed image buffers instead of faulting in fresh pages for every photo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from artefact.embed.allocator import SWITCH

# In a child process, so this test process's allocator keeps its defaults: set the worker up as
# ingest does, then allocate, fill and free a 40 MB buffer (a 12 MP photo decoded whole is 36 MB)
# and read the resident memory after the free. Kept for the next photo, the buffer stays resident;
# handed back to the kernel, it is gone and the next photo maps and zeroes it again. (glibc's
# adaptive threshold never rises above 32 MB, so without the setting a buffer this size is always
# handed back; page-fault counts are no measure here, as huge pages make them few either way.)
_PROBE = r"""
import json
import numpy as np
from artefact.index.ingest import prepare_decode_worker

def resident_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

prepare_decode_worker()
before = resident_mb()
buffer = np.ones(40 << 20, np.uint8)
del buffer
print(json.dumps({"kept_mb": resident_mb() - before}))
"""


def _kept_after_free(reuse: bool) -> float:
    # The child's allocator is set by the test alone: no MALLOC_* or tunables inherited.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env[SWITCH] = "1" if reuse else "0"
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(json.loads(done.stdout.strip().splitlines()[-1])["kept_mb"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_decode_workers_keep_freed_buffers_for_the_next_photo():
    kept = _kept_after_free(reuse=True)
    returned = _kept_after_free(reuse=False)
    assert kept > 35, kept  # the 40 MB stay in the worker's heap
    assert returned < 5, returned  # glibc's default: back to the kernel
