"""`artefact index check --repair` also sweeps the service's orphaned files (issue 10, finding 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from artefact.api.cli import main
from artefact.index.home import Home
from artefact.index.library import Library


def tiny(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


def test_check_repair_removes_files_no_row_refers_to(copy_home: Callable[[str], Path], tiny_config_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    home = Home(copy_home("repair-sweep"))
    with Library(home) as library:
        image_id = int(library.catalogue.image_ids()[0])
    kept = [home.thumbnails / f"{image_id}-320.jpg"]
    orphans = [home.uploads / "0123456789abcdef" / ("f" * 64), home.uploads / ".partial.tmp",
               home.thumbnails / "999999-320.jpg", home.evidence / f"{'e' * 32}-1.jpg"]
    for p in kept + orphans:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"bytes")
    args = ["--home", str(home.root), *tiny(tiny_config_dir), "index", "check"]

    assert main(args) == 0
    assert all(p.exists() for p in orphans), "check without --repair is read-only"
    capsys.readouterr()
    assert main([*args, "--repair", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["orphans_removed"]) == sorted(str(p) for p in orphans)
    assert not any(p.exists() for p in orphans) and all(p.exists() for p in kept)
    assert not (home.uploads / "0123456789abcdef").exists()
    assert main([*args, "--repair"]) == 0
    assert "orphaned" not in capsys.readouterr().out  # nothing left to sweep
