"""An index's model opened straight from its pinned export: a search command never imports PyTorch.

Importing PyTorch and timm costs ~9 s per command on a 2-core laptop; a pinned export opens in
well under a second. These tests pin that a real `artefact search` process goes the short way,
that both ways give the same vectors and the same model description, and that anything the pin
cannot vouch for goes the long way.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from artefact.embed.loader import embedder_for, load_embedder
from artefact.embed.models import LoadOptions
from artefact.embed.preprocess import prepare
from artefact.embed.runtimes.export import ONNX_FP32_FILE, export_folder
from artefact.embed.runtimes.registry import SessionEmbedder, open_pinned
from artefact.embed.runtimes.variants import record_of
from artefact.index.home import Home
from artefact.index.library import Library

pytest.importorskip("openvino")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
PAINTING = SAMPLE / "queries" / "query-painting-SMP-PAINT-01.jpg"
OBJECTS = {"SMP-PAINT-01", "SMP-COIN-18", "SMP-PAINT-02"}

# The suite runs PyTorch unless told otherwise (tests/conftest.py); these commands run as shipped.
AS_SHIPPED = {**os.environ, "ARTEFACT_RUNTIME": "auto"}

# Runs one search in a fresh interpreter and reports what it imported.
PROBE = """
import json, sys
from artefact.api.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "timm": "timm" in sys.modules}))
"""


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory) -> Path:
    """A small offline-model index made by `artefact index add` (runtime auto: the export is pinned)."""
    root = tmp_path_factory.mktemp("pinned")
    with open(SAMPLE / "catalogue.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] in OBJECTS]
    manifest = root / "catalogue.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    home = root / "home"
    done = subprocess.run([sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend",
                           "efficientnet_lite0", "--offline", "-q", "index", "add", str(manifest), "--images",
                           str(SAMPLE / "images")], capture_output=True, text=True, timeout=600, env=AS_SHIPPED)
    assert done.returncode == 0, done.stderr
    return home


def _model(home: Path):
    with Library(home) as library:
        return library.model


def test_a_search_command_never_imports_pytorch(cli_home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, "--home", str(cli_home), "--offline", "search", "--json",
                           str(PAINTING)], capture_output=True, text=True, timeout=600, env=AS_SHIPPED)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    probe = json.loads(lines[-1])
    result = json.loads("\n".join(lines[:-1]))
    assert probe == {"rc": 0, "torch": False, "timm": False}, done.stderr[-2000:]
    assert result["matches"][0]["object"]["id"] == "SMP-PAINT-01" and result["verdict"] == "strong match"


def test_both_ways_give_the_same_vectors_and_description(cli_home: Path, photo_image) -> None:
    model = _model(cli_home)
    options = LoadOptions(cache_dir=Home(cli_home).models, allow_download=False, device="cpu", runtime="auto")
    fast = embedder_for(model, None, options)
    slow = load_embedder(model.spec(), replace(options, runtime="openvino", precision="fp32"))
    assert isinstance(fast, SessionEmbedder) and fast.module is None  # no torch model behind it
    assert slow.module is not None
    assert fast.description.identity() == slow.description.identity() == model.identity()
    assert record_of(fast.description) == record_of(slow.description)
    arrays = [prepare(photo_image(n), fast.preprocess) for n in ("astronaut", "coffee")]
    np.testing.assert_allclose(fast.embed_prepared(arrays), slow.embed_prepared(arrays), atol=1e-6)


def test_what_the_pin_cannot_vouch_for_goes_the_long_way(cli_home: Path, tmp_path: Path) -> None:
    import shutil

    model = _model(cli_home)
    models = tmp_path / "models"
    shutil.copytree(Home(cli_home).models, models)
    options = LoadOptions(cache_dir=models, allow_download=False, device="cpu", runtime="openvino",
                          precision="fp32")
    assert open_pinned(model, options) is not None
    assert open_pinned(replace(model, weights_sha256="0" * 64), options) is None  # other weights: no pin
    assert open_pinned(model, replace(options, runtime="torch")) is None
    export = export_folder(options, model) / ONNX_FP32_FILE
    data = bytearray(export.read_bytes())
    data[-64:] = bytes(64)  # a damaged export no longer matches its pinned checksum
    export.write_bytes(bytes(data))
    assert open_pinned(model, options) is None
