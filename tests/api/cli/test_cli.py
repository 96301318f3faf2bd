"""The `artefact` command end to end, as a user runs it: real processes, real files, kill -9."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from random_inventory import committed_images, random_inventory

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
QUERIES = SAMPLE / "queries"


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "artefact.api.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"artefact {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny_args(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main job: the bundled sample indexed with the default model (offline fallback here)."""
    home = tmp_path_factory.mktemp("sample-home")
    proc = run_cli("--home", str(home), "index", "add", str(SAMPLE / "catalogue.csv"), "--images", str(SAMPLE / "images"), "-q")
    assert "27 new" in proc.stdout and "33 added" in proc.stdout, proc.stdout
    return home


def test_default_model_falls_back_loudly_when_clip_weights_are_missing(tmp_path: Path) -> None:
    proc = run_cli("--home", str(tmp_path), "--offline", "index", "add", str(SAMPLE / "catalogue.jsonl"), "--images", str(SAMPLE / "images"))
    assert "DEFAULT CLIP MODEL UNAVAILABLE" in proc.stderr
    assert "efficientnet_lite0" in proc.stdout
    stats = json.loads(run_cli("--home", str(tmp_path), "index", "stats", "--json").stdout)
    assert stats["model"]["backend"] == "efficientnet_lite0"
    assert stats["objects"] == 27 and stats["images"] == stats["vectors"] == 33


def test_explicit_model_never_falls_back(tmp_path: Path) -> None:
    proc = run_cli("--home", str(tmp_path), "--offline", "--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k",
                   "index", "add", str(SAMPLE / "catalogue.csv"), "--images", str(SAMPLE / "images"), check=False)
    assert proc.returncode == 1
    assert "ARTEFACT_PRETRAINED" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "vectors.faiss").exists()


def test_sample_search_finds_the_painting_and_says_no_match_for_the_cat(sample_home: Path) -> None:
    out = json.loads(run_cli("--home", str(sample_home), "search", str(QUERIES / "query-painting-SMP-PAINT-01.jpg"), "--json").stdout)
    assert out["verdict"] == "strong match"  # as the README says of this photo
    assert out["matches"][0]["object"]["id"] == "SMP-PAINT-01"
    assert out["matches"][0]["close"] is True
    assert out["matches"][0]["object"]["case_reference"]
    assert set(out["timings_ms"]) == {"decode", "embed", "search", "rerank"}

    text = run_cli("--home", str(sample_home), "search", str(QUERIES / "query-unrelated-chelsea-cat.jpg")).stdout
    assert "NO CLOSE MATCH" in text
    out = json.loads(run_cli("--home", str(sample_home), "search", str(QUERIES / "query-unrelated-chelsea-cat.jpg"), "--json").stdout)
    assert out["verdict"] == "no close match"
    assert all(not m["close"] for m in out["matches"])


def test_status_change_and_removal(sample_home: Path, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(sample_home, home)
    query = str(QUERIES / "query-painting-SMP-PAINT-01.jpg")
    run_cli("--home", str(home), "objects", "set-status", "SMP-PAINT-01", "recovered")
    out = json.loads(run_cli("--home", str(home), "search", query, "--json", "-k", "30").stdout)
    assert "SMP-PAINT-01" not in [m["object"]["id"] for m in out["matches"]]
    out = json.loads(run_cli("--home", str(home), "search", query, "--json", "--include-recovered").stdout)
    assert out["matches"][0]["object"]["id"] == "SMP-PAINT-01"
    shown = json.loads(run_cli("--home", str(home), "objects", "show", "SMP-PAINT-01", "--json").stdout)
    assert shown["status"] == "recovered"
    assert shown["history"][0]["action"] == "set-status"

    run_cli("--home", str(home), "objects", "remove", "SMP-PAINT-01")
    stats = json.loads(run_cli("--home", str(home), "index", "stats", "--json").stdout)
    assert stats["objects"] == 26 and stats["images"] == stats["vectors"] == 31
    proc = run_cli("--home", str(home), "objects", "show", "SMP-PAINT-01", check=False)
    assert proc.returncode == 1 and "no object" in proc.stderr
    assert run_cli("--home", str(home), "index", "check").returncode == 0


def test_search_filters_from_the_command_line(sample_home: Path) -> None:
    query = str(QUERIES / "query-painting-SMP-PAINT-01.jpg")
    out = json.loads(run_cli("--home", str(sample_home), "search", query, "--json", "--filter", "object_type=coin", "-k", "4").stdout)
    assert len(out["matches"]) == 4
    assert all(m["object"]["object_type"] == "coin" for m in out["matches"])
    proc = run_cli("--home", str(sample_home), "search", query, "--filter", "colour=blue", check=False)
    assert proc.returncode == 1 and "bad filter" in proc.stderr


def test_bad_inputs_get_clear_errors_not_tracebacks(sample_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_text("this is text")
    cases = [
        (["search", str(bad)], "not a recognised image"),
        (["search", str(tmp_path / "missing.jpg")], "not found"),
        (["search"], "give one or more photos"),
        (["index", "add", str(tmp_path / "nope.csv"), "--images", str(tmp_path)], "manifest not found"),
    ]
    for args, message in cases:
        proc = run_cli("--home", str(sample_home), *args, check=False)
        assert proc.returncode == 1, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = run_cli("--home", str(tmp_path / "empty"), "search", str(QUERIES / "query-unrelated-chelsea-cat.jpg"), check=False)
    assert proc.returncode == 1 and "no catalogue" in proc.stderr


def test_model_mismatch_is_refused(sample_home: Path, tiny_config_dir: Path) -> None:
    proc = run_cli("--home", str(sample_home), *tiny_args(tiny_config_dir), "search", str(QUERIES / "query-unrelated-chelsea-cat.jpg"), check=False)
    assert proc.returncode == 1
    assert "was built with efficientnet_lite0" in proc.stderr and "tiny-clip" in proc.stderr


# The real `artefact` command, with ingest_manifest's own on_batch hook (for tests and progress UIs) telling
# the test each commit on stdout and waiting for its word: the test picks the points where it kills.
PAUSING_CLI = """
import sys
import artefact.index.ingest as ingest
real = ingest.ingest_manifest
def on_batch(committed):
    print(committed, flush=True)
    sys.stdin.readline()
ingest.ingest_manifest = lambda *args, **kwargs: real(*args, **{**kwargs, "on_batch": on_batch})
from artefact.api.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_ingest_resumes_without_loss_or_duplicates(tmp_path: Path, tiny_config_dir: Path) -> None:
    """Each kill -9 keeps every committed batch, and the final run re-embeds exactly what was not committed."""
    images = tmp_path / "images"
    n_objects, per_object, batch = 60, 3, 4
    manifest = random_inventory(images, n_objects, per_object, seed=7)
    total = n_objects * per_object
    home = tmp_path / "home"
    args = [sys.executable, "-c", PAUSING_CLI, "--home", str(home), *tiny_args(tiny_config_dir), "index", "add",
            str(manifest), "--images", str(images), "--batch-size", str(batch), "--workers", "1", "-q"]
    committed = [0]  # images in the catalogue after each kill
    # kill -9 once this many images are committed: right after a commit, or once the next batch is under way
    for stop_at, mid_batch in ((12, False), (60, True), (120, False)):
        with (tmp_path / "ingest.err").open("ab") as err:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        while True:
            line = proc.stdout.readline()  # the run's own count of images it committed, said after each commit
            assert line, f"the ingest ended before {stop_at} images were committed: {(tmp_path / 'ingest.err').read_text()}"
            this_run = int(line)
            if committed[-1] + this_run >= stop_at:
                break
            proc.stdin.write("\n")
            proc.stdin.flush()
        if mid_batch:  # let it go on: the kill lands while it decodes, embeds or commits the next batch
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.kill()
        proc.wait()
        after = committed_images(home)
        said = committed[-1] + this_run  # what survives: all this run said it committed (and at most one more batch)
        assert after in ((said, said + batch) if mid_batch else (said,)), f"{committed}, then {after}; the run said {this_run}"
        committed.append(after)
    assert 0 < committed[-1] < total, committed
    final = run_cli("--home", str(home), *tiny_args(tiny_config_dir), "index", "add", str(manifest), "--images", str(images), "--json")
    report = json.loads(final.stdout)
    assert report["images_failed"] == 0
    # Nothing committed is embedded again; everything else is, once.
    assert report["images_unchanged"] == committed[-1], (report, committed)
    assert report["images_added"] == total - committed[-1], (report, committed)
    stats = json.loads(run_cli("--home", str(home), *tiny_args(tiny_config_dir), "index", "stats", "--json").stdout)
    assert stats["objects"] == n_objects
    assert stats["images"] == total and stats["vectors"] == total
    check = json.loads(run_cli("--home", str(home), *tiny_args(tiny_config_dir), "index", "check", "--json").stdout)
    assert check["ok"], check["problems"]
    with sqlite3.connect(home / "catalogue.sqlite") as con:
        paths = [r[0] for r in con.execute("SELECT path FROM images")]
    assert len(paths) == len(set(paths)) == total
    # A further run finds nothing to do.
    again = json.loads(run_cli("--home", str(home), *tiny_args(tiny_config_dir), "index", "add", str(manifest), "--images", str(images), "--json").stdout)
    assert again["images_added"] == 0 and again["images_unchanged"] == total
