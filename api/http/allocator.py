"""glibc malloc settings for the long-running service.

glibc gives each new thread that allocates under contention an arena of its own, up to 8 per core,
and rarely hands their memory back. The service's ~40 request threads decode photos into buffers
of a few MB, so without a cap RSS climbs in steps by hundreds of MiB (benchmarks/README.md,
"burst memory"). Two arenas is the usual setting for a threaded server; the decode slots in
engine.py bound how many buffers are alive at once.

An operator's own MALLOC_ARENA_MAX wins; on a C library other than glibc nothing is changed.
"""

from __future__ import annotations

import logging
import os

from artefact.embed.allocator import mallopt

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number from glibc's <malloc.h>
ARENA_MAX = 2


def tune_for_service() -> dict[str, int]:
    """Apply the service's malloc settings; returns those applied (empty where none could be)."""
    if os.environ.get("MALLOC_ARENA_MAX"):  # set by the operator: theirs wins
        return {}
    set_option = mallopt()
    if set_option is None:  # not glibc (musl, macOS): no mallopt to call
        return {}
    if set_option(_M_ARENA_MAX, ARENA_MAX) != 1:  # mallopt returns 1 on success
        log.warning("could not set MALLOC_ARENA_MAX=%d through mallopt", ARENA_MAX)
        return {}
    return {"MALLOC_ARENA_MAX": ARENA_MAX}
