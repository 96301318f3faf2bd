"""`artefact eval` / `bench-build` through their argparse wiring (as api/cli.py will register them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from artefact.api import cli
from artefact.api.eval_command import add_eval_parser

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
TINY_B = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def parser() -> argparse.ArgumentParser:
    """The same shape as cli.build_parser(): a SUPPRESS-default common parent on every subcommand."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for flag in ("--home", "--model-config-dir"):
        common.add_argument(flag, type=Path)
    for flag in ("--backend", "--model", "--pretrained"):
        common.add_argument(flag)
    for flags in (("--json",), ("-q", "--quiet"), ("--offline",)):
        common.add_argument(*flags, action="store_true")
    p = argparse.ArgumentParser(prog="artefact", parents=[common])
    add_eval_parser(p.add_subparsers(dest="command", required=True), common)
    return p


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = parser().parse_args(argv)
    for flag in ("json", "quiet", "offline"):
        setattr(args, flag, getattr(args, flag, False))
    rc = args.func(args, cli._settings(args))
    return rc, capsys.readouterr().out


def model_args(config_dir: Path, name: str) -> list[str]:
    return ["--backend", "open_clip", "--model", name, "--pretrained", "none", "--model-config-dir", str(config_dir)]


def test_bench_build_then_eval_compares_two_models(tmp_path: Path, tiny_config_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_config_dir / "tiny-clip-b.json").write_text(json.dumps(TINY_B))
    bench = tmp_path / "bench"
    common = ["bench-build", str(SAMPLE / "catalogue.csv"), "--images", str(SAMPLE / "images"), "--out", str(bench),
              "--conditions", "rotation,glare", "--severities", "1,3", "--objects", "2", "--no-pairs",
              "--no-skimage-distractors", "--distractors", str(SAMPLE / "queries"), "--index", "-q"]
    rc, out = run(["--home", str(tmp_path / "a"), *model_args(tiny_config_dir, "tiny-clip"), *common], capsys)
    assert rc == 0 and "queries" in out
    rc, out = run(["--home", str(tmp_path / "b"), *model_args(tiny_config_dir, "tiny-clip-b"), "--json", *common], capsys)
    assert rc == 0 and json.loads(out)["queries"] == 2 * 2 * 2 + 5 * 3

    rc, out = run(["--model-config-dir", str(tiny_config_dir), "--json", "eval", str(bench / "queries.csv"),
                   "--out", str(tmp_path / "report"), "--compare", f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}",
                   "--batch", "4"], capsys)
    assert rc == 0
    data = json.loads(out)
    assert [r["label"] for r in data["comparison"]] == ["A", "B"]
    assert "tiny-clip-b" in data["comparison"][1]["model"]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert set(report["runs"][0]["by_condition"]) == {"rotation", "glare", "plain"}
    for name in data["files"]:
        assert (tmp_path / "report" / name).is_file()

    rc, out = run(["--home", str(tmp_path / "a"), "--model-config-dir", str(tiny_config_dir), "eval",
                   str(bench / "queries.csv"), "--out", str(tmp_path / "r2"), "--limit", "3", "--no-plots"], capsys)
    assert rc == 0 and "R@1" in out and (tmp_path / "r2" / "report.json").is_file()
    assert not list((tmp_path / "r2").glob("*.png"))

    rc, out = run(["--home", str(tmp_path / "a"), "--model-config-dir", str(tiny_config_dir), "--json", "eval",
                   str(bench / "queries.csv"), "--out", str(tmp_path / "r3"), "--limit", "2", "--no-plots",
                   "--rerank", "0,20"], capsys)
    labels = [r["label"] for r in json.loads(out)["comparison"]]
    assert rc == 0 and labels == ["a rerank=0", "a rerank=20"]
    runs = json.loads((tmp_path / "r3" / "report.json").read_text())["runs"]
    assert [r["config"]["search_options"] for r in runs] == [{"rerank": 0}, {"rerank": 20}]


def test_bench_build_refuses_an_unknown_condition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from artefact.embed.errors import ArtefactError

    with pytest.raises(ArtefactError, match="unknown condition"):
        run(["--home", str(tmp_path / "h"), "bench-build", str(SAMPLE / "catalogue.csv"), "--images",
             str(SAMPLE / "images"), "--out", str(tmp_path / "b"), "--conditions", "fog"], capsys)


def test_eval_refuses_a_home_without_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q.csv").write_text("query,expected_id\nx.jpg,A\n")
    from artefact.embed.errors import CatalogueError

    with pytest.raises(CatalogueError, match="no catalogue"):
        run(["--home", str(tmp_path / "empty"), "eval", str(tmp_path / "q.csv"), "--out", str(tmp_path / "o")], capsys)
