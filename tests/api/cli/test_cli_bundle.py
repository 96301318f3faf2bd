"""`artefact signing create` and `artefact bundle export | verify | import` in-process, and `index stats` freshness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from artefact.api.cli import main

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"


def tiny(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


def run(capsys: pytest.CaptureFixture[str], home: Path, *argv: object, model: list[str] = []) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--home", str(home), *model, *map(str, argv)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_sign_export_verify_import_and_stats(tmp_path: Path, tiny_config_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    issuer, post, keys = tmp_path / "agency", tmp_path / "post", tmp_path / "keys"
    model = tiny(tiny_config_dir)
    assert run(capsys, issuer, "index", "add", SAMPLE / "catalogue.csv", "--images", SAMPLE / "images", "-q",
               model=model)[0] == 0

    rc, out, _ = run(capsys, issuer, "signing", "create", "--out", keys)
    assert rc == 0 and out.startswith("Signing key ") and (keys / "agency.key").is_file()
    key_id = out.split()[2]
    rc, _, err = run(capsys, issuer, "signing", "create", "--out", keys)
    assert rc == 1 and "never overwritten" in err

    bundle = tmp_path / "full.bundle"
    rc, out, _ = run(capsys, issuer, "bundle", "export", bundle, "--sign", keys / "agency.key")
    assert rc == 0, out
    assert out.startswith("Wrote bundle B-0001 (full; 27 objects, 33 photos; no model files)")  # random-init
    assert f"signed by key {key_id}" in out

    rc, _, err = run(capsys, post, "bundle", "verify", bundle)
    assert rc == 1 and f"signed with key {key_id}, which this home does not trust" in err
    rc, out, _ = run(capsys, post, "bundle", "verify", bundle, "--trust", keys / "agency.pub")
    assert rc == 0 and out.startswith("OK: bundle B-0001 (full)") and f"signed by trusted key {key_id}" in out

    (post / "trusted-keys").mkdir(parents=True)
    shutil.copy(keys / "agency.pub", post / "trusted-keys")
    damaged = tmp_path / "damaged.bundle"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(data)
    rc, _, err = run(capsys, post, "bundle", "import", damaged, model=model)
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not (post / "catalogue.sqlite").exists()

    rc, out, err = run(capsys, post, "bundle", "import", bundle, model=model)
    assert rc == 0, err
    assert out.startswith("Imported bundle B-0001 (full)") and "27 objects, 33 photos" in out
    rc, out, _ = run(capsys, post, "index", "stats")
    assert rc == 0 and f"bundle B-0001 (signed by key {key_id}" in out and "Catalogue: catalogue as of 20" in out
    assert "WARNING" not in out
    rc, out, _ = run(capsys, post, "index", "stats", "--json")
    stats = json.loads(out)
    assert stats["freshness"]["bundle_id"] == "B-0001" and stats["objects"] == 27

    rc, out, _ = run(capsys, issuer, "objects", "remove", "SMP-COIN-03")
    assert rc == 0
    delta = tmp_path / "delta.bundle"
    rc, out, _ = run(capsys, issuer, "bundle", "export", delta, "--since", "B-0001", "--sign", keys / "agency.key")
    assert rc == 0 and out.startswith("Wrote bundle B-0002 (delta on B-0001;")
    rc, out, err = run(capsys, post, "bundle", "import", delta, "--json", model=model)
    assert rc == 0, err
    assert json.loads(out)["bundle_id"] == "B-0002"
    rc, _, err = run(capsys, post, "objects", "show", "SMP-COIN-03")
    assert rc == 1
