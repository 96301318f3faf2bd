"""`artefact index check` only reads; `index check --repair` rebuilds the vector index from the
catalogue under the writer lock (issue 10, finding 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from artefact.api.cli import main
from artefact.index.home import Home
from artefact.index.library import Library
from home_snapshot import home_snapshot

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"


def tiny(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


@pytest.fixture(scope="module")
def indexed(indexed_sample_home: Path) -> Path:
    """The sample indexed with the tiny model, shared by the session (tests/api/conftest.py): copied per test below."""
    return indexed_sample_home


@pytest.fixture
def home(indexed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(indexed, target)
    return target


def run(home: Path, config_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--home", str(home), *tiny(config_dir), *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_check_reports_a_truncated_index_and_writes_nothing(home, tiny_config_dir, capsys):
    vectors = Home(home).vectors
    vectors.write_bytes(vectors.read_bytes()[:500])
    before = home_snapshot(home)
    rc, out, err = run(home, tiny_config_dir, capsys, "index", "check")
    assert rc == 1
    assert "PROBLEM: vector index unreadable" in out and "--repair" in err
    assert all(line.startswith("PROBLEM: ") for line in out.splitlines())
    assert home_snapshot(home) == before
    rc, out, _ = run(home, tiny_config_dir, capsys, "index", "check", "--json")
    assert rc == 1 and json.loads(out)["ok"] is False
    assert home_snapshot(home) == before


def test_check_repair_rebuilds_and_then_check_is_clean(home, tiny_config_dir, capsys):
    Home(home).vectors.unlink()
    rc, out, _ = run(home, tiny_config_dir, capsys, "index", "check", "--repair")
    assert rc == 0, out
    assert "REPAIRED: vector index " in out and "33 vectors added" in out
    assert "OK: 27 objects, 33 photos, 33 vectors, consistent" in out
    rc, out, _ = run(home, tiny_config_dir, capsys, "index", "check")
    assert rc == 0 and out.startswith("OK:")


def test_check_repair_waits_for_no_writer(home, tiny_config_dir, capsys):
    Home(home).vectors.unlink()
    before = home_snapshot(home)
    with Library(home) as other, other.writing():  # an ingest at work
        capsys.readouterr()
        rc = main(["--home", str(home), *tiny(tiny_config_dir), "index", "check", "--repair"])
        err = capsys.readouterr().err
    assert rc != 0 and "writing" in err
    assert home_snapshot(home) == before
