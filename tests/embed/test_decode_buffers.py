"""Decode workers reuse freed image buffers instead of faulting in fresh pages for every photo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from artefact.embed.allocator import SWITCH

# In a child process, so this test process's allocator keeps its defaults: decode a real photo
# (resized copies and SIFT's pyramid included, as an ingest worker does) a few times, then count
# the page faults of the next ten.
_PROBE = r"""
import json, resource, sys
from artefact.index.ingest import decode_file, prepare_decode_worker
from artefact.embed.preprocess import PreprocessConfig

prepare_decode_worker()
cfg = PreprocessConfig()
for _ in range(3):
    decode_file(sys.argv[1], cfg, 50_000_000, "sift")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    decode_file(sys.argv[1], cfg, 50_000_000, "sift")
print(json.dumps({"faults_per_photo": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10}))
"""


def _faults_per_photo(photo: str, reuse: str) -> float:
    env = {**os.environ, SWITCH: reuse}
    done = subprocess.run([sys.executable, "-c", _PROBE, photo], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(json.loads(done.stdout.strip().splitlines()[-1])["faults_per_photo"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_decode_workers_reuse_buffers(photo_files, tmp_path):
    # A catalogue photo's size (1600 px): glibc's own heuristics keep the buffers of small
    # photos, not those of a photo whose working set exceeds its adaptive trim threshold.
    photo = str(tmp_path / "large.jpg")
    with Image.open(photo_files["astronaut"]) as img:
        img.convert("RGB").resize((1600, 1200), Image.Resampling.BILINEAR).save(photo, quality=90)
    reused = _faults_per_photo(photo, "1")
    default = _faults_per_photo(photo, "0")
    # Without reuse every photo maps its buffers afresh (hundreds to thousands of 4 KiB pages);
    # with it, the second photo onwards finds them in the heap.
    assert default > 200, default
    assert reused < default / 10, (reused, default)
