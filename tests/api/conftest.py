"""Live-server fixtures: the sample catalogue indexed once, and real uvicorn servers on free loopback ports.

Every server here listens on 127.0.0.1 only, and every client is built with
`trust_env=False` so no proxy setting can send a request anywhere else.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from artefact.api.http.app import create_app
from artefact.api.http.security import KeyStore
from artefact.api.settings import Settings
from artefact.index.home import Home

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
QUERIES = SAMPLE / "queries"
ROLES = ("officer", "curator", "admin")
LOOPBACK = "127.0.0.1"


def tiny_settings(home: Path, config_dir: Path, **overrides: Any) -> Settings:
    """Settings for the tiny random-init CLIP model (builds in milliseconds, never downloads)."""
    values: dict[str, Any] = dict(home=home, backend="open_clip", model="tiny-clip", pretrained="none",
                                  model_config_dir=config_dir, offline=True, device="cpu", threads=1)
    return Settings(**{**values, **overrides})


def create_keys(home: Path) -> dict[str, str]:
    """One key per role (named after it) and a revoked one, written before the server starts."""
    store = KeyStore(Home(home).access)
    try:
        keys = {role: store.create(role, role) for role in ROLES}
        keys["revoked"] = store.create("revoked", "admin")
        store.revoke("revoked")
    finally:
        store.close()
    return keys


def wait_ready(base_url: str, timeout_s: float = 120.0, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(base_url=base_url, trust_env=False, timeout=5) as c:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"server at {base_url} died during start-up")
            try:
                r = c.get("/readyz")
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.1)
    raise RuntimeError(f"server at {base_url} not ready after {timeout_s:.0f}s: {last}")


@dataclass
class LiveServer:
    """A uvicorn server in a background thread of this process, on a free loopback port."""

    settings: Settings
    keys: dict[str, str]
    app: Any = None
    port: int = 0
    _server: Any = None
    _thread: Any = None
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, wait: bool = True) -> "LiveServer":
        self.app = create_app(self.settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))  # the kernel picks a free port; uvicorn serves this very socket
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
        self._thread.start()
        if wait:
            wait_ready(self.url, alive=self._thread.is_alive)
        else:  # only until it listens
            deadline = time.monotonic() + 30
            while not self._server.started and time.monotonic() < deadline:
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "uvicorn did not shut down"

    def client(self, role: str | None = "admin", *, header: str = "bearer", timeout: float = 60.0) -> httpx.Client:
        """A client holding the key of `role` (None: no key at all)."""
        headers = {}
        if role is not None:
            token = self.keys.get(role, role)  # an unknown role name is sent as a literal (wrong) key
            headers = {"Authorization": f"Bearer {token}"} if header == "bearer" else {"X-API-Key": token}
        c = httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=timeout)
        self._clients.append(c)
        return c


@dataclass
class ServerProcess:
    """`artefact serve` as a user runs it: a separate process on a free loopback port."""

    home: Path
    keys: dict[str, str]
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS for the server process")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


LISTENING = re.compile(r"^listening on https?://\S+:(\d+)$", re.M)


def listening_port(proc: subprocess.Popen[Any], log_path: Path, timeout_s: float = 300) -> int:
    """The port `artefact serve --port 0` bound, read from the `listening on` line it prints."""
    deadline = time.monotonic() + timeout_s  # a loaded machine can take minutes to import and start
    while time.monotonic() < deadline:
        found = LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"artefact serve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"artefact serve printed no `listening on` line in {timeout_s:.0f}s:\n"
                       f"{log_path.read_text(errors='replace')[-3000:]}")


def start_server_process(home: Path, config_dir: Path, keys: dict[str, str], env: dict[str, str] | None = None) -> ServerProcess:
    """Run `python -m artefact.api.cli serve --port 0`: the OS picks the port, serve says which (no race for it)."""
    log_path = home / "serve.log"
    cmd = [sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend", "open_clip",
           "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir),
           "--offline", "--device", "cpu", "-q", "serve", "--host", LOOPBACK, "--port", "0"]
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    log.close()
    try:
        server = ServerProcess(home, keys, proc, listening_port(proc, log_path), log_path)
        wait_ready(server.url, timeout_s=300, alive=lambda: proc.poll() is None)  # a loaded machine can take minutes
    except RuntimeError:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        raise RuntimeError(f"artefact serve failed:\n{log_path.read_text(errors='replace')[-3000:]}")
    return server


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def indexed_sample_home(tmp_path_factory: pytest.TempPathFactory, tiny_embedder: Any) -> Path:
    """data/sample (27 objects, 33 photos) indexed with the tiny model, once per session; copy before writing."""
    from artefact.index.ingest import ingest_manifest
    from artefact.index.library import Library

    home = tmp_path_factory.mktemp("api-sample-home")
    with Library(home) as library:
        report = ingest_manifest(library, tiny_embedder, SAMPLE / "catalogue.csv", SAMPLE / "images", workers=0, progress=False)
    assert report.objects_created == 27 and report.images_added == 33, report
    return home


@pytest.fixture
def copy_home(tmp_path_factory: pytest.TempPathFactory, indexed_sample_home: Path) -> Callable[[str], Path]:
    """Factory: a private copy of the indexed sample home (servers write to it)."""

    def make(name: str = "home") -> Path:
        target = tmp_path_factory.mktemp(name) / "home"
        shutil.copytree(indexed_sample_home, target)
        return target

    return make


@pytest.fixture(scope="session")
def session_home_factory(tmp_path_factory: pytest.TempPathFactory, indexed_sample_home: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        target = tmp_path_factory.mktemp(name) / "home"
        shutil.copytree(indexed_sample_home, target)
        return target

    return make


@pytest.fixture(scope="session")
def settings_factory(tiny_config_dir: Path) -> Callable[..., Settings]:
    """Factory: settings_factory(home, **overrides) -> Settings for the tiny model."""
    return lambda home, **overrides: tiny_settings(home, tiny_config_dir, **overrides)


@pytest.fixture(scope="session")
def start_live_server(tiny_config_dir: Path) -> Iterator[Callable[..., LiveServer]]:
    """Factory: start_live_server(home, keys=True, **settings) -> a running LiveServer; all stopped at the end."""
    started: list[LiveServer] = []

    def start(home: Path, keys: bool = True, wait: bool = True, **overrides: Any) -> LiveServer:
        tokens = create_keys(home) if keys else {}
        server = LiveServer(tiny_settings(home, tiny_config_dir, **overrides), tokens)
        started.append(server)
        server.start(wait=wait)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def live(session_home_factory: Callable[[str], Path], start_live_server: Callable[..., LiveServer]) -> LiveServer:
    """The shared server with the default limits and one key per role (tests that write use their own ids)."""
    return start_live_server(session_home_factory("live"))


@pytest.fixture(scope="session")
def other_tiny_weights(tmp_path_factory: pytest.TempPathFactory, tiny_config_dir: Path) -> Path:
    """A checkpoint of the tiny model with other random weights: same name and dimension, other vectors."""
    import open_clip
    import torch

    from artefact.embed.clip_backend import register_model_configs

    register_model_configs(tiny_config_dir)
    torch.manual_seed(12345)  # the built-in random init uses seed 0
    path = tmp_path_factory.mktemp("other-weights") / "tiny-clip-other.pt"
    torch.save(open_clip.create_model("tiny-clip").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def query_jpeg() -> bytes:
    return (QUERIES / "query-painting-SMP-PAINT-01.jpg").read_bytes()


@pytest.fixture(scope="session")
def catalogue_jpeg() -> bytes:
    """A photo that is in the catalogue (object SMP-PAINT-01)."""
    return next((SAMPLE / "images" / "SMP-PAINT-01").iterdir()).read_bytes()



class Helpers:
    """Plain helper functions for the API tests, handed out by the `helpers` fixture."""

    @staticmethod
    def upload(*photos: bytes, name: str = "photo.jpg", mime: str = "image/jpeg") -> list[tuple[str, tuple[str, bytes, str]]]:
        """The multipart `photos` field holding each of `photos`."""
        return [("photos", (f"{i}-{name}", data, mime)) for i, data in enumerate(photos)]

    @staticmethod
    def jpeg(img: Image.Image, quality: int = 92) -> bytes:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=quality)
        return buf.getvalue()

    @staticmethod
    def png(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    @classmethod
    def distinct_photo(cls, seed: int, side: int = 200) -> bytes:
        """A JPEG distinct for each seed: a shifted crop of a real photograph, colour-rotated."""
        from skimage import data as skd

        names = ("astronaut", "chelsea", "coffee", "rocket")
        src = np.asarray(getattr(skd, names[seed % len(names)])())[..., :3]
        rng = np.random.default_rng(seed)
        h, w = src.shape[:2]
        ch, cw = int(h * 0.6), int(w * 0.6)
        y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        crop = src[y : y + ch, x : x + cw][..., list(rng.permutation(3))]
        return cls.jpeg(Image.fromarray(np.ascontiguousarray(crop)).resize((side, side)))


    listening_port = staticmethod(listening_port)


@pytest.fixture(scope="session")
def helpers() -> type[Helpers]:
    return Helpers


@pytest.fixture(scope="session")
def server_process() -> Callable[..., ServerProcess]:
    """Factory: server_process(home, config_dir, env=None) -> `artefact serve` running with one key per role."""

    def start(home: Path, config_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
        return start_server_process(home, config_dir, create_keys(home), env=env)

    return start
