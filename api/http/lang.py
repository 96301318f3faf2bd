"""The web page's language tables (api/web/lang/<code>.js) read on the server, so the search sheet speaks the officer's language.

The page's tables stay the one source of every string. Each file is an ES module holding one
object literal with one `key: "JSON string",` entry per line (tests/api/web checks the tables);
this reader accepts exactly that shape and refuses anything else, so a table edited into
another form fails loudly in the tests instead of silently losing strings here.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from artefact.api.http.errors import LangTableError

LANG_DIR = Path(__file__).resolve().parents[1] / "web" / "lang"
DEFAULT_LANG = "en"
RTL_LANGS = frozenset({"ar"})
_ENTRY = re.compile(r'\s*([a-z0-9_]+):\s*("(?:[^"\\]|\\.)*"),?\s*(?://.*)?')
_IGNORED = re.compile(r"\s*(?://.*)?|export default \{|\};")


def languages() -> list[str]:
    """Codes of every table shipped with the page, English first."""
    codes = sorted(p.stem for p in LANG_DIR.glob("*.js"))
    return [DEFAULT_LANG] + [c for c in codes if c != DEFAULT_LANG]


def parse_table(text: str, name: str = "table") -> dict[str, str]:
    """The strings of one table's source.

    Raises:
        LangTableError: a line that is neither an entry, a comment nor the module's frame.
    """
    table: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = _ENTRY.fullmatch(line)
        if m:
            table[m.group(1)] = json.loads(m.group(2))
        elif not _IGNORED.fullmatch(line):
            raise LangTableError(f"{name} line {number}: not a `key: \"text\",` entry: {line.strip()[:60]}")
    return table


@lru_cache(maxsize=None)
def _table(code: str) -> dict[str, str]:
    path = LANG_DIR / f"{code}.js"
    return parse_table(path.read_text(encoding="utf-8"), path.name)


def pick(lang: str | None) -> str:
    """`lang` if a table exists for it ("pt-BR" -> "pt"), else English."""
    code = (lang or "").strip().lower().split("-")[0]
    return code if code.isalpha() and code in languages() else DEFAULT_LANG


class Strings:
    """One language's strings, English where a key is missing, `{name}` placeholders filled."""

    def __init__(self, lang: str | None) -> None:
        self.lang = pick(lang)
        self.rtl = self.lang in RTL_LANGS
        self._own = _table(self.lang)
        self._en = _table(DEFAULT_LANG)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._own.get(key) or self._en.get(key) or key
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)
