"""Sign-in for gloves and shared phones (issue 15, point 8): show/hide, paste, an opt-in
"remember on this device" that sign-out forgets, and a sign-in link whose code never stays
in the address bar, the history or a server's logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web_helpers import PAINTING_QUERY, PHONE_390


def stored_key(page: Any) -> tuple[Any, Any]:
    """The code as kept in (this tab's session storage, the device's local storage)."""
    session, device = page.evaluate("[sessionStorage.getItem('artefact.key'), localStorage.getItem('artefact.key')]")
    return session, device


def test_show_hide_and_paste(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True, clipboard=True)
    v.page.wait_for_selector("#signin-view:not([hidden])")
    assert v.page.get_attribute("#key-input", "type") == "password"
    v.page.evaluate("k => navigator.clipboard.writeText(k)", keys["officer"])
    v.page.tap("#key-paste")
    # the clipboard read is asynchronous: wait (up to the default timeout) for the field to take the pasted key
    v.page.wait_for_function("key => document.querySelector('#key-input').value === key", arg=keys["officer"])
    assert v.page.input_value("#key-input") == keys["officer"]
    v.page.tap("#key-show")
    assert v.page.get_attribute("#key-input", "type") == "text"
    assert v.page.get_attribute("#key-show", "aria-pressed") == "true" and v.page.inner_text("#key-show") == "Hide"
    v.screenshot("phone-sign-in-shown", full_page=False)
    v.page.tap("#key-show")
    assert v.page.get_attribute("#key-input", "type") == "password" and v.page.inner_text("#key-show") == "Show"
    v.page.tap("#signin-form button[type=submit]")
    v.page.wait_for_selector("#app-view:not([hidden])")
    assert stored_key(v.page) == (keys["officer"], None), "kept for this tab only unless asked"


def test_remember_on_this_device_until_sign_out(browser: Any, visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.page.fill("#key-input", keys["officer"])
    v.page.check("#remember-input")
    v.page.press("#key-input", "Enter")
    v.page.wait_for_selector("#app-view:not([hidden])")
    assert stored_key(v.page) == (keys["officer"], keys["officer"])
    # A new tab on the same device: still signed in.
    tab = v.context.new_page()
    tab.goto(v.base + "/")
    tab.wait_for_selector("#app-view:not([hidden])")
    assert "officer-1" in tab.inner_text("#who")
    tab.close()
    v.search_photo(PAINTING_QUERY)
    v.page.click("#signout")
    v.page.wait_for_selector("#signin-view:not([hidden])")
    assert stored_key(v.page) == (None, None), "sign-out forgets the code everywhere"
    assert v.page.is_hidden("#results") and v.page.locator("#verdict").inner_text() == ""
    tab = v.context.new_page()
    tab.goto(v.base + "/")
    tab.wait_for_selector("#signin-view:not([hidden])")
    tab.close()


def test_without_remember_a_new_tab_asks_again(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390)
    v.sign_in(keys["officer"])
    tab = v.context.new_page()
    tab.goto(v.base + "/")
    tab.wait_for_selector("#signin-view:not([hidden])")
    assert tab.evaluate("localStorage.getItem('artefact.key')") is None
    tab.close()


def test_sign_in_link_fills_the_code_and_leaves_no_trace(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    key = keys["officer"]
    v = visit(PHONE_390, path=f"/#key={key}")
    v.page.wait_for_selector("#app-view:not([hidden])")
    assert "officer-1" in v.page.inner_text("#who")
    assert v.page.evaluate("location.hash") == "" and key not in v.page.url
    assert not any(key in u for u in v.requests), "the code never travels in a URL"
    assert stored_key(v.page) == (key, None)
    v.page.reload()
    v.page.wait_for_selector("#app-view:not([hidden])")
    assert key not in v.page.url
    # The history holds the page only without the code: back leaves the page, forward returns to it clean.
    v.page.go_back()
    assert key not in v.page.url and not v.page.url.startswith(v.base)
    v.page.go_forward()
    assert v.page.url == v.base + "/"


def test_a_wrong_code_in_a_link_is_refused_and_forgotten(visit: Any) -> None:
    v = visit(PHONE_390, path="/#key=ak_not-a-real-key")
    message = v.page.wait_for_selector("#message:not([hidden])")
    assert "access code was not accepted" in message.inner_text()
    assert v.page.is_visible("#signin-view")
    assert "ak_not-a-real-key" not in v.page.url and stored_key(v.page) == (None, None)
