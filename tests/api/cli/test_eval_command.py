"""`artefact eval` / `bench-build` through the real argparse wiring of the `artefact` command, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artefact.api.cli.common import settings_from_args
from artefact.api.cli.main import parse_args

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
TINY_B = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Parse with the command's own parser and call the command; its errors propagate (main() would print them)."""
    args = parse_args(argv)
    rc = args.func(args, settings_from_args(args))
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
    from artefact.api.cli.common import UsageError

    with pytest.raises(UsageError, match="unknown condition"):
        run(["--home", str(tmp_path / "h"), "bench-build", str(SAMPLE / "catalogue.csv"), "--images",
             str(SAMPLE / "images"), "--out", str(tmp_path / "b"), "--conditions", "fog"], capsys)


def test_eval_refuses_a_home_without_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q.csv").write_text("query,expected_id\nx.jpg,A\n")
    from artefact.index.errors import CatalogueError

    with pytest.raises(CatalogueError, match="no catalogue"):
        run(["--home", str(tmp_path / "empty"), "eval", str(tmp_path / "q.csv"), "--out", str(tmp_path / "o")], capsys)


def test_eval_refuses_a_list_without_expected_ids_or_with_unknown_ones(tmp_path: Path, tiny_config_dir: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from artefact.index.errors import ManifestError

    home = tmp_path / "h"
    rc, _ = run(["--home", str(home), *model_args(tiny_config_dir, "tiny-clip"), "index", "add",
                 str(SAMPLE / "catalogue.csv"), "--images", str(SAMPLE / "images"), "--workers", "0",
                 "--local-features", "none", "-q"], capsys)
    assert rc == 0
    photo = SAMPLE / "images" / "SMP-COIN-01" / "1.jpg"
    (tmp_path / "no_col.csv").write_text(f"query,condition\n{photo},plain\n")
    with pytest.raises(ManifestError, match="expected_id"):
        run(["--home", str(home), "--model-config-dir", str(tiny_config_dir), "eval", str(tmp_path / "no_col.csv"),
             "--out", str(tmp_path / "o1"), "--no-plots"], capsys)
    (tmp_path / "unknown.csv").write_text(f"query,expected_id\n{photo},SMP-COIN-01\n{photo},NOT-IN-CATALOGUE\n")
    with pytest.raises(ManifestError, match="NOT-IN-CATALOGUE"):
        run(["--home", str(home), "--model-config-dir", str(tiny_config_dir), "eval", str(tmp_path / "unknown.csv"),
             "--out", str(tmp_path / "o2"), "--no-plots"], capsys)
    assert not (tmp_path / "o2" / "report.json").exists()  # refused before anything was written
