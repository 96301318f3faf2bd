"""`artefact serve`'s malloc settings: applied on glibc, and an operator's own MALLOC_* settings win.

Each case runs in a fresh interpreter, since mallopt changes the process for good.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

PROBE = "import json; from artefact.api.http.allocator import tune_for_service; print(json.dumps(tune_for_service()))"


def _applied(**env: str) -> dict[str, int]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_arena_cap_applied_by_default() -> None:
    from artefact.api.http.allocator import ARENA_MAX

    assert _applied() == {"MALLOC_ARENA_MAX": ARENA_MAX}


def test_operator_environment_wins() -> None:
    assert _applied(MALLOC_ARENA_MAX="4") == {}
    assert _applied(MALLOC_ARENA_MAX="") == {"MALLOC_ARENA_MAX": 2}  # empty is unset
