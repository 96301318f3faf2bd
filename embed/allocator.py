"""Keep freed image buffers for reuse in processes that decode photos one after another.

glibc serves each allocation above its mmap threshold (128 KiB at start, raised only up to the
size of buffers freed so far) with fresh pages from the kernel and hands them back on free. A
decode worker allocates ~20 MB of short-lived buffers per photo (the decoded photo, its resized
copies, SIFT's image pyramid), so every photo paid ~3,000-6,000 page faults: 10-25 ms of kernel
time per photo, a sixth to a quarter of a worker's CPU (benchmarks/README.md, "Second look").
Raising the threshold keeps those buffers in the heap, where the next photo reuses them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Allocations below this come from the reusable heap. Larger ones (a photo of more than ~20 MP
# decoded whole) still get their own mapping and go back to the kernel when freed.
REUSE_BELOW_BYTES = 64 << 20
# Free memory at the heap's top that is kept rather than returned: bounds what an idle worker holds.
KEEP_FREE_BYTES = 128 << 20
# Set to 0 to keep glibc's defaults in the workers too (to measure the difference, or where
# memory is tighter than CPU).
SWITCH = "ARTEFACT_REUSE_DECODE_BUFFERS"


def reuse_freed_buffers(reuse_below: int = REUSE_BELOW_BYTES, keep_free: int = KEEP_FREE_BYTES) -> bool:
    """Tell glibc's allocator to reuse freed buffers below `reuse_below` bytes instead of unmapping them.

    For worker processes only (ingest decoders, Ray transforms): a long-lived service keeps
    the default, so its memory falls back after a burst of large uploads. Returns False where
    the C library is not glibc (musl, macOS), which is left as it is, or when the environment
    variable ARTEFACT_REUSE_DECODE_BUFFERS is 0.
    """
    if os.environ.get(SWITCH, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, reuse_below) == 1 and mallopt(_M_TRIM_THRESHOLD, keep_free) == 1
    if not done:
        log.debug("mallopt refused the decode buffer settings; the allocator keeps its defaults")
    return done
