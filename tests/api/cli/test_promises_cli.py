"""README promises of the `artefact` command that had no test: keys stored hashed, `serve` refusing an open
address without keys, the cross-process writer lock, another model's weights refused, text search on an
image-only model refused clearly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"


def cli(home: Path, *args: str, config_dir: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    model = ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none",
             "--model-config-dir", str(config_dir)] if config_dir else []
    return subprocess.run([sys.executable, "-m", "artefact.api.cli", "--home", str(home), *model, *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def here(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Like `cli`, in this process: the same main(), without a Python and model start-up (~10 s of CPU on
    this machine) per command. The test process is as much another process to a lock holder as a new one."""
    from artefact.api.cli.main import main

    def run(home: Path, *args: str, config_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        model = ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none",
                 "--model-config-dir", str(config_dir)] if config_dir else []
        argv = ["--home", str(home), *model, *args]
        capsys.readouterr()
        rc = main(argv)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, rc, out.out, out.err)

    return run


def test_keys_create_list_revoke_and_the_token_is_stored_nowhere(tmp_path: Path, here) -> None:
    home = tmp_path / "home"
    made = here(home, "keys", "create", "--name", "desk-7", "--role", "officer", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["key"]
    assert len(token) >= 32
    listed = json.loads(here(home, "keys", "list", "--json").stdout)
    assert [(k["name"], k["role"], k["revoked_at"]) for k in listed] == [("desk-7", "officer", None)]
    assert token not in json.dumps(listed)
    # The plain token appears in no file of the home folder, in any byte of it (only a hash is kept).
    secret = token.encode()
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files, "the key store wrote nothing"
    assert not [p for p in files if secret in p.read_bytes()]
    assert here(home, "keys", "revoke", "desk-7").returncode == 0
    listed = json.loads(here(home, "keys", "list", "--json").stdout)
    assert listed[0]["name"] == "desk-7" and listed[0]["revoked_at"]


def test_serve_refuses_an_open_address_without_keys(tmp_path: Path, tiny_config_dir: Path, helpers) -> None:
    """Open mode is for this machine only (issue 10, finding 1): no flag opens a network address without keys."""
    home = tmp_path / "home"
    with socket.socket() as taken:  # were serve not to refuse, it would fail at once on this port, not serve on it
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        busy = str(taken.getsockname()[1])
        refused = cli(home, "serve", "--host", "0.0.0.0", "--port", busy, timeout=120)
        assert refused.returncode == 1
        assert "refusing to listen on 0.0.0.0 with no API keys" in refused.stderr and "keys create" in refused.stderr
        assert "Traceback" not in refused.stderr
        # the old escape is gone
        assert cli(home, "serve", "--host", "0.0.0.0", "--port", busy, "--insecure", timeout=120).returncode == 2
    # With a key (revoked even) it starts (reached here over loopback), warns about plain HTTP, and asks for a key.
    assert cli(home, "keys", "create", "--role", "officer", "--name", "desk-1").returncode == 0
    assert cli(home, "keys", "revoke", "desk-1").returncode == 0
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend", "open_clip",
                                 "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(tiny_config_dir),
                                 "--offline", "serve", "--host", "0.0.0.0", "--port", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        port = helpers.listening_port(proc, log)
        deadline = time.monotonic() + 300  # the model loads after it listens: minutes on a loaded machine
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                # ready, not only live: a stop during the model load waits for the load to finish
                if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/whoami", trust_env=False).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine may not finish a graceful shutdown in time
            proc.kill()
            proc.wait(timeout=30)
    assert "PLAIN HTTP ON A NETWORK ADDRESS" in log.read_text()


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(copy_home: Callable[[str], Path], tiny_config_dir: Path,
                                                                   tmp_path: Path, here) -> None:
    home = copy_home("locked")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from artefact.index.library import Library\n"
         f"lib = Library({str(home)!r})\n"
         "with lib.writing():\n    print('held', flush=True); sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"  # an event, not a sleep
        before = json.loads(here(home, "index", "stats", "--json", config_dir=tiny_config_dir).stdout)
        manifest = tmp_path / "more.csv"
        photo = sorted((SAMPLE / "images" / "SMP-PAINT-01").iterdir())[0]
        manifest.write_text(f"id,title,status,images\nLOCK-1,Locked out,stolen,{photo}\n")
        second = here(home, "index", "add", str(manifest), "--images", "/", config_dir=tiny_config_dir)
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert "another process is writing" in second.stderr and "Traceback" not in second.stderr
        after = json.loads(here(home, "index", "stats", "--json", config_dir=tiny_config_dir).stdout)
        assert (after["objects"], after["images"], after["vectors"]) == (before["objects"], before["images"], before["vectors"])
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=60)
    # Once the first writer is done, the same command goes through and the index checks clean.
    third = here(home, "index", "add", str(manifest), "--images", "/", "--json", config_dir=tiny_config_dir)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["images_added"] == 1
    assert here(home, "index", "check", config_dir=tiny_config_dir).returncode == 0


def test_a_same_dimension_model_with_other_weights_is_refused(copy_home: Callable[[str], Path], tiny_config_dir: Path,
                                                              other_tiny_weights: Path, here) -> None:
    home = copy_home("other-weights")
    query = sorted((SAMPLE / "images" / "SMP-PAINT-01").iterdir())[0]
    out = here(home, "--backend", "open_clip", "--model", "tiny-clip", "--pretrained", str(other_tiny_weights),
               "--model-config-dir", str(tiny_config_dir), "search", str(query))
    assert out.returncode == 1, out.stdout
    assert "was built with open_clip:tiny-clip" in out.stderr and "dim 32" in out.stderr and "Traceback" not in out.stderr


def test_text_search_on_an_image_only_model_is_a_clear_error(tmp_path: Path, offline_embedder, here) -> None:
    from artefact.index.library import Library

    home = tmp_path / "home"
    with Library(home) as library:
        library.bind_model(offline_embedder.description)  # an (empty) index of the image-only model
    out = here(home, "--offline", "search", "--text", "a bronze horse")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "has no text tower" in out.stderr and "Traceback" not in out.stderr


def test_index_calibrate_is_stored_shown_and_used_by_the_next_search(copy_home: Callable[[str], Path], tiny_config_dir: Path,
                                                                     tmp_path: Path, here) -> None:
    """`index calibrate` end to end: fit, stored in the index, shown by `index stats`, applied by the next search."""
    from artefact.index.calibration import Calibration

    home = copy_home("calibrate")
    query = str(sorted((SAMPLE / "images" / "SMP-PAINT-01").iterdir())[0])
    before = json.loads(here(home, "search", query, "--json", "--rerank", "0", config_dir=tiny_config_dir).stdout)
    assert all(m["probability"] is None for m in before["matches"])  # the tiny random model has no built-in calibration
    photos = sorted((SAMPLE / "images").rglob("*.jpg"))[:12]
    queries = tmp_path / "queries.csv"
    queries.write_text("query,expected_id\n" + "".join(f"{p},{p.parent.name}\n" for p in photos)
                       + f"{SAMPLE / 'queries' / 'query-unrelated-chelsea-cat.jpg'},\n")
    fitted = here(home, "--json", "index", "calibrate", str(queries), "--depth", "5", config_dir=tiny_config_dir)
    assert fitted.returncode == 0, fitted.stderr
    similarity_only = next(c for c in json.loads(fitted.stdout) if not c["uses_inliers"])
    stats = json.loads(here(home, "index", "stats", "--json", config_dir=tiny_config_dir).stdout)
    shown = stats["calibration"]["similarity_only"]
    assert shown["source"] == "fitted on this index"
    assert (shown["strong"], shown["possible"], shown["weights"]) == \
        (similarity_only["strong"], similarity_only["possible"], similarity_only["weights"])
    after = json.loads(here(home, "search", query, "--json", "--rerank", "0", config_dir=tiny_config_dir).stdout)
    cal = Calibration(**shown)
    first, second = after["matches"][:2]  # the lead the verdict read: the first answer over the next
    assert first["margin"] == pytest.approx(first["score"] - second["score"], abs=2e-4)
    for m in after["matches"]:
        assert m["probability"] == pytest.approx(cal.probability(m["score"], None, m["margin"]), abs=1e-2)
        # The JSON rounds probabilities to 4 places: where that rounding may cross a threshold (a
        # catalogue photo searched for itself sits on the fit's top point), either side's verdict is the search's.
        sides = {cal.verdict(m["probability"] + d) for d in (-5e-5, 0.0, 5e-5)}
        assert m["verdict"] in sides, (m, cal)
