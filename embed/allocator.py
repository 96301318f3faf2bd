"""glibc malloc settings: decode workers keep freed image buffers for the next photo.

glibc serves each allocation above its mmap threshold (128 KiB at start, raised only up to the
size of buffers freed so far) with fresh pages from the kernel and hands them back on free, and
trims the heap's free top beyond twice that. A decode worker allocates tens of MB of short-lived
buffers per photo (the decoded photo, its resized copies, SIFT's image pyramid), so every 1600 px
photo paid ~10,000 page faults: 25-31 ms of kernel time per photo, a quarter of a worker's CPU
(benchmarks/README.md, "Second look"). Raising both keeps the buffers in the heap, where the next
photo reuses them.

The service's own setting, an arena cap, is in api/http/allocator.py; both call `mallopt` here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Callable, cast

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
OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt(param, value) (returns 1 on success), or None on another C library (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int], int], fn)


def reuse_freed_buffers(reuse_below: int = REUSE_BELOW_BYTES, keep_free: int = KEEP_FREE_BYTES) -> bool:
    """Tell glibc's allocator to reuse freed buffers below `reuse_below` bytes instead of unmapping them.

    For worker processes only (ingest decoders, Ray transforms): a long-lived service keeps
    the default, so its memory falls back after a burst of large uploads. Returns False where
    the C library is not glibc (musl, macOS), which is left as it is, when the environment
    variable ARTEFACT_REUSE_DECODE_BUFFERS is 0, or when the operator set glibc's own
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (theirs win).
    """
    if os.environ.get(SWITCH, "1") == "0" or any(v in os.environ for v in OPERATOR_SETTINGS):
        return False
    set_option = mallopt()
    if set_option is None:
        return False
    done = set_option(_M_MMAP_THRESHOLD, reuse_below) == 1 and set_option(_M_TRIM_THRESHOLD, keep_free) == 1
    if not done:
        log.debug("mallopt refused the decode buffer settings; the allocator keeps its defaults")
    return done
