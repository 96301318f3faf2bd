"""Shared pieces of the browser tests: paths, viewports, the live server and one visit of the page."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
QUERIES = SAMPLE / "queries"
PAINTING_QUERY = QUERIES / "query-painting-SMP-PAINT-01.jpg"
UNRELATED_QUERY = QUERIES / "query-unrelated-chelsea-cat.jpg"
ARTEFACTS = REPO / "test-artefacts" / "web"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium phones home at start (and this machine refuses it).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
]
PHONE = {"width": 360, "height": 780}
PHONE_390 = {"width": 390, "height": 844}  # the phone of the walk-through (touch)
DESKTOP = {"width": 1280, "height": 900}


class Gate:
    """Holds the service's answers to searches, as a slow service would, until the test opens it.

    The search itself runs in full (the upload is received, the photo searched); only the answer
    waits, so the page's upload progress is real and only the wait is simulated.
    """

    def __init__(self) -> None:
        self.holding = False
        self.held = 0  # answers that reached the gate while it was holding

    def hold(self) -> None:
        self.holding, self.held = True, 0

    def open(self) -> None:
        self.holding = False


def gated(app: Any, gate: Gate) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/search/") or not gate.holding:
            await app(scope, receive, send)
            return
        answer: list[Any] = []

        async def keep(message: Any) -> None:
            answer.append(message)

        await app(scope, receive, keep)
        gate.held += 1
        while gate.holding:
            await asyncio.sleep(0.05)
        for message in answer:
            await send(message)

    return wrapped


def start_server(home: Path, gate: Gate | None = None) -> tuple[str, Callable[[], None]]:
    """The real service (uvicorn, real start-up) on a free loopback port; returns its URL and a stop function."""
    import uvicorn

    from artefact.api.http.app import create_app
    from artefact.api.settings import Settings

    app = create_app(Settings(home=home, offline=True))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port and uvicorn serves this very socket: no race for it
    port = sock.getsockname()[1]
    config = uvicorn.Config(gated(app, gate) if gate else app, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name="web-test-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not become ready")
        time.sleep(0.3)

    def stop() -> None:
        srv.should_exit = True
        thread.join(timeout=30)
        sock.close()

    return base, stop


def search_answer(base: str, key: str, photo: Path, **form: str) -> dict[str, Any]:
    """A real answer of the service to a photo search (to be altered and served to the page).

    The page's own request cannot be forwarded and altered: Chromium leaves file-backed parts
    out of an intercepted request's body, so the service would receive an empty photo.
    """
    with httpx.Client(base_url=base, trust_env=False, timeout=120, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.post("/v1/search/photo", files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))], data=form)
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        return answer


class Visit:
    """One browser context on the service, recording every request it makes and every JSON answer."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int], lang: str | None = None,
                 enforce_csp: bool = False, locale: str | None = None, touch: bool = False,
                 clipboard: bool = False, path: str = "/", init: str = "") -> None:
        self.base = base
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.console_errors: list[str] = []
        self.answers: list[Any] = []  # JSON bodies the service sent (the data the page may show as it is)
        # Playwright's wait_for_function evaluates strings, which the page's own CSP forbids; the load test
        # keeps the CSP on to show the page itself runs under it.
        options: dict[str, Any] = dict(viewport=viewport, accept_downloads=True, bypass_csp=not enforce_csp,
                                       is_mobile=touch, has_touch=touch)
        if locale:
            options["locale"] = locale
        self.context = browser.new_context(**options)
        if clipboard:
            self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        script = "window.__printed = 0; window.print = () => { window.__printed += 1; };" + init
        if lang:
            script += f"localStorage.setItem('artefact.lang', {json.dumps(lang)});"
        self.context.add_init_script(script)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        # HTTP error statuses are part of the tests (401, 415); Chromium logs each one, script errors are what count.
        self.page.on("console", lambda m: self.console_errors.append(m.text)
                     if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("response", self._keep_json)
        self.page.goto(base + path)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith(self.base + "/") or url.startswith(("blob:", "data:")):
            route.continue_()
        else:  # recorded and refused: nothing may leave the machine
            self.outside.append(url)
            route.abort()

    def _keep_json(self, response: Any) -> None:
        if "/v1/" in response.url and "json" in (response.headers.get("content-type") or ""):
            try:
                self.answers.append(response.json())
            except Exception:  # noqa: BLE001 - a body the browser no longer holds; the page got it anyway
                pass

    def answer(self, key: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The service's JSON answer that holds `key`. The page may show an answer before the
        response listener has read its body (another round trip to the browser), so wait for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = next((a for a in self.answers if isinstance(a, dict) and key in a), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer holding {key!r} in {len(self.answers)} answers")
            self.page.wait_for_timeout(50)  # lets Playwright dispatch the pending response event

    def sign_in(self, key: str) -> None:
        self.page.fill("#key-input", key)
        self.page.press("#key-input", "Enter")  # keyboard, not a click
        self.page.wait_for_selector("#app-view:not([hidden])")

    def add_photos(self, *paths: Path) -> None:
        self.page.set_input_files("#files-input", [str(p) for p in paths])
        self.page.wait_for_function(f"document.querySelectorAll('#photo-list li').length === {len(paths)}")

    def search_photo(self, *paths: Path) -> None:
        self.add_photos(*paths)
        self.page.click("#search-button")
        self.page.wait_for_selector("#results:not([hidden])")

    def wait_images(self, selector: str) -> None:
        self.page.wait_for_function(
            "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)", arg=selector)

    def no_horizontal_overflow(self) -> None:
        width = self.page.evaluate("document.documentElement.scrollWidth")
        client = self.page.evaluate("document.documentElement.clientWidth")
        assert width <= client, f"page is {width}px wide in a {client}px viewport"

    def top_in_view(self, selector: str) -> None:
        """The element's top edge is on screen (not above it, not below the fold)."""
        box = self.page.evaluate("s => { const r = document.querySelector(s).getBoundingClientRect();"
                                 " return [r.top, innerHeight]; }", selector)
        assert -1 <= box[0] < box[1] / 2, f"{selector} top at {box[0]:.0f}px in a {box[1]}px viewport"

    def screenshot(self, name: str, full_page: bool = True) -> None:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        assert not self.outside, f"requests left the machine: {self.outside}"
        assert all(u.startswith((self.base, "blob:", "data:")) for u in self.requests), self.requests
        assert not self.console_errors, self.console_errors
        self.context.close()
