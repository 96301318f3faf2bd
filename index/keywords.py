"""Keyword search over record fields: the indexed columns, their weights, and a safe FTS5 query from typed words."""

from __future__ import annotations

import re

from artefact.index.errors import CatalogueError

# Record columns the keyword index holds (objects.object_id is the catalogue id), with their bm25
# weights: a word in the title, id or case reference says more than one deep in a description.
KEYWORD_COLUMNS: dict[str, float] = {
    "object_id": 10.0,
    "case_reference": 10.0,
    "title": 8.0,
    "maker": 5.0,
    "inscriptions": 4.0,
    "object_type": 3.0,
    "materials": 3.0,
    "techniques": 3.0,
    "subject": 3.0,
    "distinguishing_features": 2.0,
    "date_period": 2.0,
    "country": 1.0,
    "source": 1.0,
    "description": 1.0,
}
# unicode61 folds case for all scripts; "remove_diacritics 2" also folds accents ("Göttin" = "gottin").
TOKENIZER = "unicode61 remove_diacritics 2"
MAX_QUERY_CHARS = 200
MAX_TERMS = 16
_TERM = re.compile(r"[^\W_]", re.UNICODE)  # a term counts when it holds a letter or a digit


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression for words as an officer types them: every word must occur, each as a prefix.

    Each whitespace-separated word becomes one quoted FTS5 string (double quotes doubled), so
    nothing typed is read as FTS5 syntax (AND, NEAR, column:, *, parentheses); a word with
    punctuation inside ("SAMPLE-2026-0101", "l'Été") becomes a phrase of its parts, the last a prefix.

    Raises:
        CatalogueError: no word with a letter or digit, or more than MAX_QUERY_CHARS characters.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise CatalogueError(f"the words are {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    terms = [t for t in text.split() if _TERM.search(t)][:MAX_TERMS]
    if not terms:
        raise CatalogueError("give at least one word with a letter or a digit")
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def bm25_weights() -> str:
    """The weights argument of bm25() in column order."""
    return ", ".join(f"{w:g}" for w in KEYWORD_COLUMNS.values())
