"""A stale verdict never looks like the new answer (issue 15, point 1): a new search voids the old
answer, shows upload progress and a Cancel button beside Search, times out, and shows errors
where the answer would be. Slow or dead services are simulated by holding the page's request.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from web_helpers import PAINTING_QUERY, PHONE_390, Gate

# Every text the progress line shows, in order (the page replaces it as the upload moves).
WATCH_PROGRESS = """() => {
  window.__busy = [];
  new MutationObserver(() => window.__busy.push(document.getElementById('busy-text').textContent))
    .observe(document.getElementById('busy-text'), { childList: true, characterData: true, subtree: true });
}"""


def hold(page: Any, pattern: str = "**/v1/search/photo") -> list[Any]:
    """Hold matching requests (the service seems slow) until the test continues or aborts them."""
    held: list[Any] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def wait_held(page: Any, held: list[Any], n: int = 1, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(held) < n:
        assert time.monotonic() < deadline, "the search request never came"
        page.wait_for_timeout(50)


def test_a_slow_search_voids_the_old_answer_and_shows_progress(
        visit: Any, web_home: tuple[Path, dict[str, str]], gate: Gate) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    assert v.page.is_visible("#verdict") and "match" in v.page.inner_text("#verdict")
    v.page.evaluate(WATCH_PROGRESS)
    # A slow link (about 2 Mbit/s up) and a slow service: the upload shows its percentage, then the wait.
    cdp = v.context.new_cdp_session(v.page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 250_000})
    gate.hold()
    v.page.check("#full-size-input")  # the painting as it is (0.14 MB), so the upload takes a moment
    v.page.tap("#search-button")
    v.page.wait_for_selector("#busy:not([hidden])")
    # The old "Strong match" is gone while the new search runs; progress and Cancel are shown instead.
    assert v.page.is_hidden("#results") and v.page.is_hidden("#verdict")
    assert v.page.locator("#verdict").inner_text() == ""
    assert v.page.is_visible("#busy-bar") and v.page.is_visible("#cancel-button")
    assert v.page.is_disabled("#search-button")
    search = v.page.locator("#search-button").bounding_box()
    cancel = v.page.locator("#cancel-button").bounding_box()
    assert search and cancel and abs(search["y"] - cancel["y"]) < 60, "Cancel sits beside the Search button"
    v.page.wait_for_function("document.getElementById('busy-text').textContent.startsWith('Photos sent')")
    assert v.page.is_hidden("#results")
    seen = v.page.evaluate("window.__busy")
    percents = [int(m.group(1)) for s in seen if (m := re.fullmatch(r"Sending the photos: (\d{1,3})%", s))]
    assert percents and percents == sorted(percents) and any(0 < p < 100 for p in percents), seen
    assert seen[-1].startswith("Photos sent"), seen
    v.screenshot("phone-search-in-progress", full_page=False)
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    gate.open()
    v.page.wait_for_selector("#results:not([hidden])")
    assert v.page.is_hidden("#busy") and v.page.is_hidden("#cancel-button") and v.page.is_enabled("#search-button")
    v.top_in_view("#verdict")


def test_cancel_stops_the_search_and_shows_no_answer(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    held = hold(v.page)
    v.page.tap("#search-button")
    wait_held(v.page, held)
    v.page.tap("#cancel-button")
    message = v.page.wait_for_selector("#message:not([hidden])")
    assert "Search cancelled" in message.inner_text()
    assert v.page.is_hidden("#results") and v.page.is_hidden("#busy") and v.page.is_enabled("#search-button")
    try:
        held[0].continue_()  # the service answers after all: the page must not show it
    except Exception:  # noqa: BLE001 - Chromium may already have dropped the cancelled request
        pass
    v.page.wait_for_timeout(1500)
    assert v.page.is_hidden("#results")
    # And the next search works as usual.
    v.page.unroute("**/v1/search/photo")
    v.page.tap("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    assert v.page.is_hidden("#message")


def test_a_hung_service_times_out_where_the_answer_would_be(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    # The timeout is configurable; a per-device override keeps this test short.
    v = visit(PHONE_390, touch=True, init="localStorage.setItem('artefact.search_timeout_s', '2');")
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    held = hold(v.page)
    v.page.tap("#search-button")
    wait_held(v.page, held)
    message = v.page.wait_for_selector("#message:not([hidden])", timeout=15000)
    assert "No answer from the service within 2 seconds" in message.inner_text()
    assert v.page.is_hidden("#results") and v.page.is_hidden("#busy") and v.page.is_enabled("#search-button")
    # Where the answer would be: just before the (hidden) results, and on screen.
    assert v.page.evaluate("document.getElementById('message').nextElementSibling.id") == "results"
    box = v.page.locator("#message").bounding_box()
    assert box is not None and 0 <= box["y"] < PHONE_390["height"] - box["height"] / 2
    v.screenshot("phone-search-timeout", full_page=False)


def test_a_service_dying_mid_search_leaves_no_stale_verdict(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    held = hold(v.page)
    v.page.click("#search-button")
    wait_held(v.page, held)
    held[0].abort("connectionreset")
    message = v.page.wait_for_selector("#message:not([hidden])")
    text = message.inner_text()
    assert "The service could not be reached" in text and "null" not in text
    assert v.page.is_hidden("#verdict")


def test_connection_error_box_has_no_stray_null(visit: Any) -> None:
    v = visit(PHONE_390)
    v.page.route("**/v1/whoami", lambda route: route.abort("connectionrefused"))
    v.page.reload()
    message = v.page.wait_for_selector("#message:not([hidden])")
    assert message.inner_text().strip() == "The service could not be reached. Check the connection to the server."
    assert "null" not in v.page.inner_text("body")


def test_the_search_limit_is_explained(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    detail = "search limit of 120 a minute reached for key 'officer-1'"
    v.page.route("**/v1/search/photo",
                 lambda route: route.fulfill(status=429, json={"detail": detail}, headers={"Retry-After": "30"}))
    v.add_photos(PAINTING_QUERY)
    v.page.click("#search-button")
    text = v.page.wait_for_selector("#message:not([hidden])").inner_text()
    assert "Too many searches with this access code" in text and detail in text
    assert v.page.is_hidden("#results") and v.page.is_visible("#app-view"), "still signed in"
