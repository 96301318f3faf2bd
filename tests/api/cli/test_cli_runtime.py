"""`--runtime` / `--precision` and `artefact model export` in-process on a tiny index: the variant is
recorded in the index, an agreeing runtime may search it, and export makes the variant in the home's model cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artefact.api.cli import main

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
PAINTING = SAMPLE / "queries" / "query-painting-SMP-PAINT-01.jpg"


def _run(capsys: pytest.CaptureFixture[str], home: Path, config_dir: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--home", str(home), "--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none",
               "--model-config-dir", str(config_dir), *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_runtime_flags_and_model_export(tmp_path: Path, tiny_config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    rc, _, err = _run(capsys, home, tiny_config_dir, "--runtime", "onnx", "--precision", "fp32", "index", "add",
                      str(SAMPLE / "catalogue.csv"), "--images", str(SAMPLE / "images"), "-q")
    assert rc == 0, err
    rc, out, err = _run(capsys, home, tiny_config_dir, "index", "stats", "--json")
    runtime = json.loads(out)["model"]["extra"]["runtime"]
    assert (runtime["name"], runtime["precision"]) == ("onnx", "fp32")
    assert runtime["agreement_min_cosine"] >= 0.99 and len(runtime["sha256"]) == 64

    # PyTorch agrees with the fp32 export: it may search this index, and finds the painting first
    rc, out, err = _run(capsys, home, tiny_config_dir, "--runtime", "torch", "search", str(PAINTING), "--json")
    assert rc == 0, err

    rc, out, err = _run(capsys, home, tiny_config_dir, "model", "export", "--runtime", "onnx", "--precision", "int8", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["runtime"]["precision"] == "int8" and data["catalogue_photos_for_calibration"] > 0
    folder = Path(data["folder"])
    assert folder.is_relative_to(home / "models") and (folder / "onnx-int8.onnx").is_file()
    assert (folder / "onnx-int8.pin.json").is_file()

    rc, out, err = _run(capsys, home, tiny_config_dir, "--runtime", "auto", "model", "info")
    assert rc == 0 and "Runtime:     onnx/fp32" in out  # auto follows the index's own variant
