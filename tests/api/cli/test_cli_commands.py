"""Every `artefact` subcommand in-process on a tiny index: text and JSON output, exit codes, usage errors."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from artefact.api.cli import main

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
PAINTING = SAMPLE / "queries" / "query-painting-SMP-PAINT-01.jpg"
CAT = SAMPLE / "queries" / "query-unrelated-chelsea-cat.jpg"


def tiny(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


class Cli:
    """Runs `artefact` in this process against one home with the tiny model; returns (rc, stdout, stderr)."""

    def __init__(self, home: Path, config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home, self.config_dir, self.capsys = home, config_dir, capsys

    def __call__(self, *argv: object, model: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = ["--home", str(self.home), *(tiny(self.config_dir) if model else []), *map(str, argv)]
        rc = main(args)
        captured = self.capsys.readouterr()
        return rc, captured.out, captured.err

    def json(self, *argv: object) -> object:
        rc, out, err = self(*argv, "--json")
        assert rc == 0, err
        return json.loads(out)


@pytest.fixture(scope="module")
def indexed_home(indexed_sample_home: Path) -> Path:
    """The sample indexed with the tiny model, shared by the session (tests/api/conftest.py): copied per test below."""
    return indexed_sample_home


@pytest.fixture
def cli(indexed_home: Path, tmp_path: Path, tiny_config_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """A private copy of the indexed home, so commands that change it do not leak into other tests."""
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    return Cli(home, tiny_config_dir, capsys)


def test_index_add_reports_counts_and_skipped_photos(tmp_path: Path, tiny_config_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,title,images\nA,One,SMP-PAINT-01/1.jpg\nB,Two,missing.jpg\n")
    run = Cli(tmp_path / "home", tiny_config_dir, capsys)
    rc, out, err = run("index", "add", manifest, "--images", SAMPLE / "images", "-q")
    assert rc == 0
    assert out.startswith(f"Indexed with open_clip:tiny-clip")
    assert "objects: 2 new, 0 updated, 0 unchanged" in out
    assert "photos:  1 added, 0 replaced, 0 unchanged, 1 skipped" in out
    assert "full problem report:" in out
    assert "skipped missing.jpg (object B):" in err
    data = run.json("index", "add", manifest, "--images", SAMPLE / "images")
    assert isinstance(data, dict) and data["images_unchanged"] == 1 and data["model"].startswith("open_clip:tiny-clip")


def test_index_stats_and_check(cli: Cli) -> None:
    rc, out, _ = cli("index", "stats")
    assert rc == 0
    assert f"Home:     {cli.home}" in out
    assert "Objects:  27 (" in out and "Photos:   33 (vectors in index: 33)" in out
    assert "Model:    open_clip:tiny-clip/" in out and "(dim 32)" in out
    assert "Local features: sift (33 photos)" in out
    assert "Verdicts (with verification): uncalibrated" in out
    stats = cli.json("index", "stats")
    assert isinstance(stats, dict) and stats["objects"] == 27 and stats["vectors"] == 33
    rc, out, _ = cli("index", "check")
    assert (rc, out.strip()) == (0, "OK: 27 objects, 33 photos, 33 vectors, consistent")
    assert cli.json("index", "check") == {"ok": True, "problems": [], "images": 33, "vectors": 33}
    with sqlite3.connect(cli.home / "catalogue.sqlite") as db:  # a photo row gone, its vector left behind
        db.execute("DELETE FROM images WHERE image_id = (SELECT min(image_id) FROM images)")
    db.close()
    rc, out, _ = cli("index", "check")
    # The photo's vector and its local features (kept in the feature store) are both left behind.
    assert rc == 1 and "PROBLEM: 1 vectors in the index belong to no catalogue image" in out.splitlines()
    assert "PROBLEM: 1 photos' local features belong to no catalogue photo" in out.splitlines()
    assert all(line.startswith("PROBLEM: ") for line in out.splitlines())


def test_index_calibrate_fits_both_modes_and_stats_show_them(cli: Cli, tmp_path: Path) -> None:
    photos = sorted((SAMPLE / "images").rglob("*.jpg"))[:12]
    queries = tmp_path / "queries.csv"
    queries.write_text("query,expected_id\n" + "".join(f"{p},{p.parent.name}\n" for p in photos) + f"{CAT},\n")
    rc, out, _ = cli("index", "calibrate", queries, "--depth", "5")
    assert rc == 0
    assert out.startswith("Calibrated on 13 queries (65 candidate pairs, ")
    assert "  with geometric verification: strong match at p >= " in out
    assert "  similarity only: strong match at p >= " in out
    fitted = cli.json("index", "calibrate", queries, "--depth", "5")
    assert isinstance(fitted, list) and [c["uses_inliers"] for c in fitted] == [True, False]
    rc, out, _ = cli("index", "stats")
    assert "Verdicts (similarity only): strong at p >= " in out and "uncalibrated" not in out


def test_objects_show_list_set_status_remove(cli: Cli) -> None:
    rc, out, _ = cli("objects", "show", "SMP-PAINT-01")
    assert rc == 0
    assert out.startswith("SMP-PAINT-01  [stolen]\n  object type: ")
    assert "  photos (2):\n    #" in out
    shown = cli.json("objects", "show", "SMP-PAINT-01")
    assert isinstance(shown, dict) and shown["id"] == "SMP-PAINT-01" and len(shown["images"]) == 2
    rc, out, _ = cli("objects", "list", "--limit", "3")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 3 and lines[0].split()[1] in ("stolen", "looted", "missing", "recovered")
    looted = cli.json("objects", "list", "--filter", "status=looted")
    assert isinstance(looted, list) and looted and {r["status"] for r in looted} == {"looted"}
    rc, out, _ = cli("objects", "set-status", "SMP-PAINT-01", "recovered")
    assert (rc, out) == (0, "SMP-PAINT-01: status stolen -> recovered\n")
    rc, out, _ = cli("objects", "remove", "SMP-PAINT-01")
    assert (rc, out) == (0, "SMP-PAINT-01: removed with 2 photo vectors\n")
    rc, _, err = cli("objects", "show", "SMP-PAINT-01")
    assert rc == 1 and err.startswith("error: ") and "no object" in err


def test_search_text_output_and_defaults(cli: Cli) -> None:
    rc, out, _ = cli("search", PAINTING)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"Query: {PAINTING}"
    assert lines[2].startswith("(uncalibrated: possible match at similarity >= ")
    assert [ln[:3] for ln in lines if ln[:3] in (" 1.", " 5.", " 6.")] == [" 1.", " 5."]  # 5 results by default
    assert lines[-1].startswith("(") and "ms decode" in lines[-1] and "ms rerank" in lines[-1]
    data = cli.json("search", PAINTING)
    assert isinstance(data, dict) and len(data["matches"]) == 5 and data["reranked"] is True
    assert data["query"] == {"photos": [str(PAINTING)], "text": None}
    data = cli.json("search", "--text", "a coin", "-k", "3", "--filter", "object_type=coin", "--no-rerank")
    assert isinstance(data, dict) and len(data["matches"]) == 3 and data["reranked"] is False
    assert {m["object"]["object_type"] for m in data["matches"]} == {"coin"}
    assert "rerank" not in data["timings_ms"]


@pytest.mark.parametrize(("argv", "message"), [
    (["search"], "error: give one or more photos and/or --text"),
    (["search", str(PAINTING), "--filter", "colour=blue"], "error: bad filter 'colour=blue': use KEY=VALUE"),
    (["search", str(PAINTING), "--filter", "status"], "error: bad filter 'status': use KEY=VALUE"),
    (["search", str(PAINTING), "--filter", "status=gone"], "error: unknown status gone: use one of stolen, looted"),
    (["objects", "list", "--filter", "status=gone"], "error: unknown status gone"),
])
def test_usage_mistakes_exit_1_with_a_message(cli: Cli, argv: list[str], message: str) -> None:
    rc, out, err = cli(*argv)
    assert rc == 1 and out == ""
    assert err.startswith(message)


def test_commands_on_a_home_without_catalogue(tmp_path: Path, tiny_config_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = Cli(tmp_path / "nowhere", tiny_config_dir, capsys)
    for argv in (["search", str(PAINTING)], ["index", "stats"], ["objects", "list"]):
        rc, _, err = run(*argv)
        assert rc == 1 and err.startswith(f"error: no catalogue in {tmp_path / 'nowhere'}: index one first"), argv


def test_model_info_and_fetch(cli: Cli) -> None:
    rc, out, _ = cli("model", "info")
    assert rc == 0
    assert out.startswith("Model:       open_clip:tiny-clip")
    assert "Dimension:   32   text search: yes" in out
    assert "Index model: open_clip:tiny-clip" in out and "(same)" in out
    info = cli.json("model", "info")
    assert isinstance(info, dict) and info["matches_index"] is True and info["index_model"]["dim"] == 32
    rc, out, _ = cli("model", "fetch")
    assert rc == 0 and out.startswith("open_clip:tiny-clip") and f" is in {cli.home / 'models'} (sha256 " in out


def test_keys_create_list_revoke(cli: Cli) -> None:
    rc, out, _ = cli("keys", "create", "--name", "alice", "--role", "officer", model=False)
    assert rc == 0 and out.startswith("API key for alice (officer); shown once, store it safely:\n")
    token = out.splitlines()[1]
    created = cli.json("keys", "create", "--name", "bob", "--role", "admin")
    assert isinstance(created, dict) and created["name"] == "bob" and created["key"] and created["key"] != token
    rc, out, _ = cli("keys", "list", model=False)
    assert rc == 0 and "alice" in out and "officer" in out and "active, last used never" in out
    rc, out, _ = cli("keys", "revoke", "alice", model=False)
    assert (rc, out) == (0, "key alice revoked\n")
    listed = cli.json("keys", "list")
    assert isinstance(listed, list)
    assert {k["name"]: bool(k["revoked_at"]) for k in listed} == {"alice": True, "bob": False}


def test_keys_list_and_revoke_in_a_home_without_keys_create_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "no-home-yet"
    assert main(["--home", str(home), "--json", "keys", "list"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    rc = main(["--home", str(home), "keys", "revoke", "alice"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: no keys in {home}") and "Traceback" not in err
    assert not home.exists()


def test_serve_refuses_a_network_address_without_keys(tmp_path: Path, tiny_config_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = Cli(tmp_path / "home", tiny_config_dir, capsys)
    rc, _, err = run("serve", "--host", "0.0.0.0", model=False)
    assert rc == 1
    assert err.startswith("error: refusing to listen on 0.0.0.0 with no API keys")


def test_eval_refuses_a_bad_rerank_list(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text(f"query,expected_id\n{PAINTING},SMP-PAINT-01\n")
    rc, _, err = cli("eval", tmp_path / "q.csv", "--out", tmp_path / "out", "--rerank", "0,many")
    assert rc == 1 and err.startswith("error: --rerank '0,many': give whole numbers")


def test_openmp_is_told_to_sleep_before_faiss_or_torch_load() -> None:
    """OpenMP reads OMP_WAIT_POLICY once, when its library loads: importing the command must set it first."""
    probe = textwrap.dedent("""
        import os, sys
        os.environ.pop("OMP_WAIT_POLICY", None)
        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name in ("faiss", "torch", "cv2") and os.environ.get("OMP_WAIT_POLICY") != "PASSIVE":
                    sys.exit(f"{name} loaded before OMP_WAIT_POLICY was set")
        sys.meta_path.insert(0, Watch())
        import artefact.api.cli
        assert "faiss" in sys.modules, "the probe saw nothing load"
    """)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
