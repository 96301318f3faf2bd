"""Curators (issue 15, points 9 and 10): no silent "Stolen" for new objects, the outcome of
"Add object" in view, "Recovered" confirmed and undoable, result cards that follow a status
change, and no stray "null" under a record. Runs on a private copy of the catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from web_helpers import PAINTING_QUERY, PHONE_390, QUERIES


@pytest.fixture(scope="module")
def curator_server(own_server: Any) -> str:
    return str(own_server("curator-home"))


def in_view(page: Any, selector: str) -> bool:
    return bool(page.evaluate("""s => { const r = document.querySelector(s).getBoundingClientRect();
                                     return r.top >= 0 && r.bottom <= innerHeight && r.height > 0; }""", selector))


def test_a_new_object_needs_a_chosen_status_and_its_outcome_is_in_view(
        visit: Any, curator_server: str, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True, base=curator_server)
    v.sign_in(keys["curator"])
    assert v.page.input_value("#add-status") == "", "no status until the curator picks one"
    v.page.fill("#add-id", "WEB-CUR-01")
    v.page.fill("#add-title", "Bronze lamp from the curator test")
    v.page.set_input_files("#add-photos", str(QUERIES / "query-partial-SMP-ARCH-01.jpg"))
    posts: list[str] = []
    v.page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/v1/objects") else None)
    v.page.tap("#add-form button[type=submit]")
    result = v.page.wait_for_selector("#add-result:not([hidden])")
    assert result.inner_text() == "Choose the object's status." and in_view(v.page, "#add-result")
    assert v.page.evaluate("document.activeElement.id") == "add-status" and not posts
    v.page.select_option("#add-status", "missing")
    v.page.tap("#add-form button[type=submit]")
    v.page.wait_for_function("document.getElementById('add-result').textContent.includes('WEB-CUR-01 added')")
    assert in_view(v.page, "#add-result"), "the confirmation is on screen, not far above"
    assert v.page.input_value("#add-status") == "", "the form is reset to no status"
    v.screenshot("phone-curator-added", full_page=False)
    # The same id again: the refusal is shown where the curator is looking.
    v.page.fill("#add-id", "WEB-CUR-01")
    v.page.select_option("#add-status", "stolen")
    v.page.set_input_files("#add-photos", str(QUERIES / "query-partial-SMP-ARCH-01.jpg"))
    v.page.tap("#add-form button[type=submit]")
    v.page.wait_for_function("document.getElementById('add-result').getAttribute('role') === 'alert'")
    text = v.page.inner_text("#add-result")
    assert "Object ID already exists" in text and "WEB-CUR-01" in text and in_view(v.page, "#add-result")
    assert "null" not in text
    v.screenshot("phone-curator-duplicate", full_page=False)


def test_recovered_is_confirmed_undoable_and_the_result_card_follows(
        visit: Any, curator_server: str, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, base=curator_server)
    v.sign_in(keys["curator"])
    v.search_photo(PAINTING_QUERY)
    card = v.page.locator("#match-list > li[data-object='SMP-PAINT-01']")
    assert "Stolen" in card.locator(".field-status").inner_text()
    card.locator("button.open-record").click()
    v.page.wait_for_selector("#record-dialog[open] #status-select")
    assert "null" not in v.page.inner_text("#record-body"), "no stray null under the record"
    puts: list[str] = []
    v.page.on("request", lambda r: puts.append(r.post_data or "") if r.method == "PUT" else None)

    # Recovered: asked first; "No" changes nothing.
    v.page.select_option("#status-select", "recovered")
    v.page.click("#record-body .status-form button[type=submit]")
    confirm = v.page.wait_for_selector("#status-confirm:not([hidden])")
    assert "no longer appear in any officer's search" in confirm.inner_text()
    v.page.click("#status-confirm-no")
    assert v.page.is_hidden("#status-confirm") and v.page.input_value("#status-select") == "stolen" and not puts

    # "Yes": changed; the result card behind the dialog and the verdict card show it at once.
    v.page.select_option("#status-select", "recovered")
    v.page.click("#record-body .status-form button[type=submit]")
    v.page.click("#status-confirm-yes")
    v.page.wait_for_function("document.getElementById('record-body').textContent.includes('Status changed to Recovered')")
    assert len(puts) == 1 and "recovered" in puts[0]
    assert "Recovered" in card.locator(".field-status").inner_text()
    assert "Recovered" in v.page.inner_text("#verdict .verdict-status")
    v.screenshot("phone-curator-recovered", full_page=False)

    # Undo puts the old status back, without asking again.
    v.page.click("#status-undo")
    v.page.wait_for_function("document.getElementById('record-body').textContent.includes('Status changed back to Stolen')")
    assert "Stolen" in v.page.inner_text("#record-body .field-status")
    assert "Stolen" in card.locator(".field-status").inner_text()
    assert len(puts) == 2 and "stolen" in puts[1]
    assert "null" not in v.page.inner_text("#record-body")

    # Other statuses change in one step.
    v.page.select_option("#status-select", "missing")
    v.page.click("#record-body .status-form button[type=submit]")
    v.page.wait_for_function("document.getElementById('record-body').textContent.includes('Status changed to Missing')")
    assert v.page.is_hidden("#status-confirm") and "Missing" in card.locator(".field-status").inner_text()
