"""Ten languages besides English (issue 15, point 7): complete tables, nothing left in English,
Arabic right to left, the browser's language by default, and screenshots of the main views.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from web_helpers import PAINTING_QUERY, PHONE_390, Visit

LANGS = ["en", "ar", "de", "el", "es", "fr", "it", "pt", "ru", "tr", "zh"]
SCREENSHOT_LANGS = ("ar", "fr", "zh")

# Every visible text node (and alt / aria-label text) of the page, with where it sits.
VISIBLE_TEXTS = """() => {
  const out = [];
  const shown = (el) => el.checkVisibility({ checkVisibilityCSS: true, checkOpacity: true });
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || el.closest('#lang-select, script, style, #print-view')) continue;
    if (!shown(el.tagName === 'OPTION' ? el.closest('select') : el)) continue;
    out.push([text, el.id || el.className || el.tagName]);
  }
  for (const el of document.querySelectorAll('[alt], [aria-label]')) {
    if (!shown(el)) continue;
    for (const a of ['alt', 'aria-label']) if (el.getAttribute(a)) out.push([el.getAttribute(a).trim(), a]);
  }
  out.push([document.title, 'title']);
  return out;
}"""

OPEN_EVERYTHING = "() => document.querySelectorAll('details').forEach(d => { d.open = true; d.dispatchEvent(new Event('toggle')); })"


def tables(page: Any) -> dict[str, dict[str, str]]:
    """The shipped table of every language, as the page loads them."""
    return page.evaluate("""async (langs) => {
        const i18n = await import('/static/i18n.js');
        const out = {};
        for (const code of langs) out[code] = await i18n.loadTable(code);
        return out;
    }""", LANGS)


def switch(page: Any, code: str) -> None:
    """Pick a language as the officer does (the picker), and wait until the page has it."""
    page.evaluate("""code => { const s = document.getElementById('lang-select'); s.value = code;
                               s.dispatchEvent(new Event('change')); }""", code)
    page.wait_for_function("code => document.documentElement.lang.startsWith(code)", arg=code)


def data_strings(visit: Visit) -> set[str]:
    """Every string the service sent (values and record keys): the page shows data as it is."""
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, str):
            found.add(x.strip())
        elif isinstance(x, dict):
            for k, v in x.items():
                found.add(str(k).replace("_", " "))
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(visit.answers)
    return found


def is_data(text: str, data: set[str]) -> bool:
    if re.fullmatch(r"[\d\s.,:;·×%()+\-–—/#|]*", text):
        return True  # numbers, sizes, times, separators
    return text in data or any(text in d for d in data if len(text) >= 3)


def template(value: str) -> re.Pattern[str]:
    """A table entry as a pattern: its {placeholders} match anything."""
    parts = re.split(r"\{\w+\}", value)
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$", re.S)


def english_escapes(texts: list[list[str]], lang: str, all_tables: dict[str, dict[str, str]], data: set[str]) -> list[Any]:
    """Visible strings that are English table entries where `lang` says something else."""
    en, own = all_tables["en"], all_tables[lang]
    patterns = [(key, template(value), template(own[key])) for key, value in en.items()]
    escaped = []
    for text, where in texts:
        if is_data(text, data):
            continue
        for key, en_pattern, own_pattern in patterns:
            if en_pattern.match(text) and not own_pattern.match(text):
                escaped.append((where, key, text))
                break
    return escaped


def test_every_table_has_every_key_and_the_same_placeholders(visit: Any) -> None:
    v = visit(PHONE_390)
    v.page.wait_for_selector("#signin-view:not([hidden])")
    all_tables = tables(v.page)
    offered = v.page.evaluate("[...document.querySelectorAll('#lang-select option')].map(o => o.value)")
    assert sorted(offered) == sorted(LANGS)
    en = all_tables["en"]
    assert len(en) > 150
    placeholders = lambda s: sorted(re.findall(r"\{(\w+)\}", s))  # noqa: E731
    for code in LANGS:
        table = all_tables[code]
        assert set(table) == set(en), (code, set(en) ^ set(table))
        wrong = [k for k in en if placeholders(en[k]) != placeholders(table[k])]
        assert not wrong, (code, wrong)
        assert all(isinstance(s, str) and s.strip() for s in table.values()), code
        if code != "en":
            # A real translation, not a copy: most entries differ from English.
            same = [k for k in en if table[k] == en[k]]
            assert len(same) < len(en) * 0.1, (code, same)


def test_no_visible_string_escapes_the_tables(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    """A marker table ("⟦key⟧" for every key): every string on screen must carry a marker or be data."""
    _, keys = web_home
    v = visit(PHONE_390)
    v.page.wait_for_selector("#signin-view:not([hidden])")
    v.page.evaluate("""async () => {
        const i18n = await import('/static/i18n.js');
        const en = await i18n.loadTable('en');
        const marked = Object.fromEntries(Object.entries(en).map(([k, s]) =>
            [k, '⟦' + k + ':' + (s.match(/\\{\\w+\\}/g) || []).join('|') + '⟧']));
        i18n.addStrings('de', marked);
    }""")
    switch(v.page, "de")
    stray: list[Any] = []

    def check(view: str) -> None:
        data = data_strings(v)
        for text, where in v.page.evaluate(VISIBLE_TEXTS):
            if "⟦" not in text and "⟧" not in text and not is_data(text, data):  # split around data: either end
                stray.append((view, where, text))

    check("sign-in")
    v.page.fill("#key-input", keys["curator"])  # a curator sees every control an officer sees, and more
    v.page.click("#signin-form button[type=submit]")
    v.page.wait_for_selector("#app-view:not([hidden])")
    v.add_photos(PAINTING_QUERY)
    v.page.wait_for_selector("#photo-list img")
    v.page.click("#search-button")
    v.page.wait_for_selector("#results:not([hidden])")
    v.page.evaluate(OPEN_EVERYTHING)
    v.wait_images("#results img")
    check("results")
    v.page.locator("#match-list button.open-record").first.click()
    v.page.wait_for_selector("#record-dialog[open] #status-select")
    v.page.select_option("#status-select", "recovered")
    v.page.click("#record-body .status-form button[type=submit]")
    v.page.wait_for_selector("#status-confirm:not([hidden])")
    check("record")
    v.page.click("#status-confirm-no")
    v.page.keyboard.press("Escape")
    v.page.click("#add-form button[type=submit]")  # nothing filled in: the curator is told what is missing
    v.page.wait_for_selector("#add-result:not([hidden])")
    check("curator")
    v.page.locator("#photo-list button[data-crop]").click()
    v.page.wait_for_selector("#crop-dialog[open]")
    check("crop")
    assert not stray, stray


def test_every_language_renders_with_nothing_left_in_english(
        visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, touch=True)
    v.page.wait_for_selector("#signin-view:not([hidden])")
    all_tables = tables(v.page)
    escaped: list[Any] = []
    for code in LANGS[1:]:
        switch(v.page, code)
        assert v.page.get_attribute("html", "dir") == ("rtl" if code == "ar" else "ltr")
        assert v.page.inner_text("#signin-form button[type=submit]") == all_tables[code]["signin_button"]
        escaped += [(code, "sign-in", *e) for e in english_escapes(v.page.evaluate(VISIBLE_TEXTS), code, all_tables, set())]
        if code in SCREENSHOT_LANGS:
            v.screenshot(f"lang-{code}-sign-in", full_page=False)
    switch(v.page, "en")
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    v.page.evaluate(OPEN_EVERYTHING)
    v.wait_images("#results img")
    v.page.locator("#match-list button.open-record").first.click()
    v.page.wait_for_selector("#record-dialog[open]")
    v.page.keyboard.press("Escape")
    data = data_strings(v)
    for code in LANGS[1:]:
        switch(v.page, code)
        table = all_tables[code]
        assert v.page.inner_text("#verdict .verdict-words") == table["verdict_strong"]  # the painting: a strong match
        escaped += [(code, "results", *e) for e in english_escapes(v.page.evaluate(VISIBLE_TEXTS), code, all_tables, data)]
        v.no_horizontal_overflow()
        if code in SCREENSHOT_LANGS:
            v.page.evaluate("() => document.getElementById('verdict').scrollIntoView()")
            v.screenshot(f"lang-{code}-verdict", full_page=False)
            v.screenshot(f"lang-{code}-results-full")
            v.page.locator("#match-list button.open-record").first.click()
            v.page.wait_for_function("t => document.querySelector('#record-body dt')?.textContent === t",
                                     arg=table["field_id"])
            escaped += [(code, "record", *e) for e in english_escapes(v.page.evaluate(VISIBLE_TEXTS), code, all_tables, data)]
            v.screenshot(f"lang-{code}-record", full_page=False)
            v.page.keyboard.press("Escape")
    assert not escaped, escaped


def test_arabic_lays_the_page_out_right_to_left(visit: Any, web_home: tuple[Path, dict[str, str]]) -> None:
    _, keys = web_home
    v = visit(PHONE_390, lang="ar", touch=True)
    v.page.wait_for_selector("#signin-view:not([hidden])")
    assert v.page.get_attribute("html", "dir") == "rtl" and v.page.get_attribute("html", "lang") == "ar"
    assert v.page.inner_text("#signin-h") == "تسجيل الدخول"
    v.sign_in(keys["officer"])
    v.search_photo(PAINTING_QUERY)
    v.no_horizontal_overflow()
    v.top_in_view("#verdict")
    # Mirrored: the verdict's accent bar on the right, the search button's row starting at the right.
    borders = v.page.evaluate("(() => { const s = getComputedStyle(document.getElementById('verdict'));"
                              " return [parseFloat(s.borderRightWidth), parseFloat(s.borderLeftWidth)]; })()")
    assert borders[0] > borders[1]
    button = v.page.locator("#search-button").bounding_box()
    assert button is not None and button["x"] + button["width"] > PHONE_390["width"] / 2
    assert "مسروقة" in v.page.inner_text("#verdict .verdict-status")  # "Stolen" in the verdict card


@pytest.mark.parametrize(("locale", "expected"), [("fr-FR", "fr"), ("pt-BR", "pt"), ("zh-CN", "zh"), ("ja-JP", "en")])
def test_the_browser_language_is_the_default(browser: Any, server: str, locale: str, expected: str) -> None:
    v = Visit(browser, server, PHONE_390, locale=locale)
    try:
        v.page.wait_for_selector("#signin-view:not([hidden])")
        assert v.page.evaluate("document.documentElement.lang").startswith(expected)
        assert v.page.input_value("#lang-select") == expected
        # A choice made in the picker wins over the browser's language next time.
        other = "de" if expected != "de" else "es"
        switch(v.page, other)
        v.page.reload()
        v.page.wait_for_selector("#signin-view:not([hidden])")
        assert v.page.evaluate("document.documentElement.lang") == other
        assert json.loads(json.dumps(v.page.evaluate("localStorage.getItem('artefact.lang')"))) == other
    finally:
        v.close()
