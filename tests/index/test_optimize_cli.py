"""`artefact index optimize` and `index stats`: the kind by size from settings, a pinned kind, the
measured recall shown."""

from __future__ import annotations

import json

import numpy as np

from artefact.api.cli.main import main
from artefact.api.settings import Settings
from artefact.index.library import Library

from test_optimize import new_library, photos


def test_settings_fill_the_store_options(monkeypatch):
    monkeypatch.setenv("ARTEFACT_INDEX_FLAT_MAX", "1234")
    monkeypatch.setenv("ARTEFACT_INDEX_TARGET_RECALL", "0.9")
    options = Settings().store_options()
    assert options.flat_max == 1234 and options.target_recall == 0.9 and options.compressed == "ivf-pq"


def test_optimize_and_stats_from_the_command_line(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    new_library(home, photos(np.random.default_rng(4), 600)).close()  # about 1200 photos
    monkeypatch.setenv("ARTEFACT_INDEX_FLAT_MAX", "1000")
    monkeypatch.setenv("ARTEFACT_INDEX_TARGET_RECALL", "0.95")
    assert main(["index", "stats", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "Index:    flat" in out and "optimize due" in out and "should be ivf-pq" in out

    assert main(["index", "optimize", "--home", str(home), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "ivf-pq" and report["recall_at_10"] >= 0.95 and report["params"]["nprobe"] >= 1

    assert main(["index", "stats", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "Index:    ivf-pq: " in out and "recall@10 vs exact" in out and "optimize due" not in out

    assert main(["index", "optimize", "--home", str(home), "--type", "flat"]) == 0
    assert "Index: flat over" in capsys.readouterr().out
    with Library(home) as lib:
        assert lib.pinned_index_type == "flat" and lib.vectors.kind == "flat" and lib.check() == []
    assert main(["index", "stats", "--home", str(home)]) == 0
    assert "Index:    flat (pinned)" in capsys.readouterr().out
