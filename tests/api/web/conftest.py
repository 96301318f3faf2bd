"""Browser-test fixtures: the real service on the sample index, driven in Debian's Chromium.

One server (sample catalogue, offline EfficientNet model, an officer and a curator key) serves
every test that only reads; tests that change the catalogue get a server of their own on a copy.
Screenshots go to test-artefacts/web/ (not committed).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from web_helpers import CHROMIUM, CHROMIUM_ARGS, PHONE, Gate, Visit, start_server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="Debian's chromium is not installed (make test installs it)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory, offline_sample_home: Path) -> tuple[Path, dict[str, str]]:
    """The sample catalogue indexed with the offline EfficientNet model, plus an officer and a curator key."""
    from artefact.api.http.security import KeyStore
    from artefact.index.home import Home

    home = tmp_path_factory.mktemp("web-home") / "home"
    shutil.copytree(offline_sample_home, home)  # the session's offline index (tests/conftest.py), copied
    store = KeyStore(Home(home).access)
    keys = {role: store.create(f"{role}-1", role) for role in ("officer", "curator")}
    store.close()
    return home, keys


@pytest.fixture(scope="session")
def shared_gate() -> Gate:
    return Gate()


@pytest.fixture(scope="session")
def server(web_home: tuple[Path, dict[str, str]], shared_gate: Gate) -> Iterator[str]:
    """The shared, read-mostly service (only test_web_page's curator test adds an object to it)."""
    base, stop = start_server(web_home[0], shared_gate)
    yield base
    stop()


@pytest.fixture
def gate(shared_gate: Gate) -> Iterator[Gate]:
    """The shared service's answer gate (open unless the test holds it; opened again after)."""
    yield shared_gate
    shared_gate.open()


@pytest.fixture(scope="session")
def own_server(web_home: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Factory: a service on a private copy of the sample home, for tests that change the catalogue."""
    stops: list[Callable[[], None]] = []

    def make(name: str) -> str:
        home = tmp_path_factory.mktemp(name) / "home"
        shutil.copytree(web_home[0], home)
        base, stop = start_server(home)
        stops.append(stop)
        return base

    yield make
    for stop in stops:
        stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def visit(browser: Any, server: str) -> Iterator[Callable[..., Visit]]:
    """Factory: visit(viewport, lang=..., ...) opens the page on the shared server; all checked and closed after."""
    opened: list[Visit] = []

    def make(viewport: dict[str, int] = PHONE, lang: str | None = None, enforce_csp: bool = False,
             base: str | None = None, **options: Any) -> Visit:
        v = Visit(browser, base or server, viewport, lang, enforce_csp, **options)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()
