"""Keyword search (SQLite FTS5 over record fields): accents and case folded, prefixes, ranking, filters,
kept in step with every write, built for catalogues of an older schema, and no typed text is FTS5 syntax."""

from __future__ import annotations

import sqlite3

import pytest

from artefact.index.catalogue import MIGRATIONS, Catalogue, SearchFilters
from artefact.index.errors import CatalogueError
from artefact.index.keywords import fts_query
from artefact.index.records import ObjectRecord


def _ids(records: list[ObjectRecord]) -> list[str]:
    return [r.object_id for r in records]


@pytest.fixture
def cat(tmp_path):
    c = Catalogue(tmp_path / "catalogue.sqlite")
    with c.transaction():
        c.upsert_object(ObjectRecord("ATH-7", {"title": "Statue de la Déesse Athéna", "maker": "Phidias (atelier)",
                                               "materials": "marbre", "status": "looted", "country": "Ελλάδα",
                                               "case_reference": "GR-2026/0042"}, {}))
        c.upsert_object(ObjectRecord("ICON-3", {"title": "Icon", "description": "a déesse in the margin",
                                                "inscriptions": "ΑΓΙΟΣ ΓΕΩΡΓΙΟΣ", "status": "recovered"}, {}))
        c.upsert_object(ObjectRecord("VASE-1", {"title": "Amphora", "object_type": "vase", "status": "stolen"}, {}))
    yield c
    c.close()


def test_accents_and_case_are_ignored_and_words_are_prefixes(cat):
    assert _ids(cat.find_objects("deesse")) == ["ATH-7", "ICON-3"]  # title outranks description
    assert _ids(cat.find_objects("ATHENA")) == ["ATH-7"]
    assert _ids(cat.find_objects("athé")) == ["ATH-7"]  # a prefix, typed with its accent
    assert _ids(cat.find_objects("αγιος")) == ["ICON-3"]  # Greek capitals without their tonos
    # SQLite's unicode61 folds case in every script but accents in Latin letters only (not the Greek tonos).
    assert _ids(cat.find_objects("ΕΛΛΆΔΑ")) == ["ATH-7"]
    assert _ids(cat.find_objects("phid marbre")) == ["ATH-7"]  # every word must occur
    assert _ids(cat.find_objects("phidias amphora")) == []


def test_ids_and_case_references_are_found_whole_or_by_their_start(cat):
    assert _ids(cat.find_objects("GR-2026/0042")) == ["ATH-7"]
    assert _ids(cat.find_objects("gr-2026")) == ["ATH-7"]
    assert _ids(cat.find_objects("vase-1")) == ["VASE-1"]


def test_filters_combine_with_words(cat):
    assert _ids(cat.find_objects("deesse", SearchFilters())) == ["ATH-7"]  # recovered left out by default
    assert _ids(cat.find_objects("deesse", SearchFilters.parse({"status": ["recovered"]}))) == ["ICON-3"]
    assert _ids(cat.find_objects("deesse", limit=1)) == ["ATH-7"]
    assert _ids(cat.find_objects("deesse", limit=1, offset=1)) == ["ICON-3"]


def test_the_index_follows_updates_status_changes_and_removals(cat):
    with cat.transaction():
        cat.upsert_object(ObjectRecord("VASE-1", {"title": "Krater by the Berlin Painter", "status": "stolen"}, {}))
    assert _ids(cat.find_objects("krater")) == ["VASE-1"]
    assert _ids(cat.find_objects("amphora")) == []
    with cat.transaction():
        cat.set_status("VASE-1", "recovered")
    assert _ids(cat.find_objects("krater", SearchFilters(include_recovered=True))) == ["VASE-1"]
    with cat.transaction():
        cat.remove_object("VASE-1")
    assert cat.find_objects("krater") == []
    cat.db.execute("INSERT INTO objects_fts (objects_fts) VALUES ('integrity-check')")  # raises if out of step


@pytest.mark.parametrize("typed", ['"', 'deesse"', "deesse AND", "NEAR(deesse", "title:deesse", "deesse*", "-deesse",
                                   "(deesse", "^deesse", "deesse OR athena", "{title}: x", "'"])
def test_typed_syntax_is_never_fts5_syntax(cat, typed):
    try:
        found = cat.find_objects(typed)
    except CatalogueError:
        return  # no word in it: a clear 400 upstream, never a crash
    assert all(isinstance(r, ObjectRecord) for r in found)


def test_text_without_words_is_refused_clearly():
    for typed in ("", "   ", "***", '"-"', "x" * 201):
        with pytest.raises(CatalogueError):
            fts_query(typed)
    assert fts_query('say "hi"') == '"say"* """hi"""*'


def test_a_catalogue_of_the_previous_schema_gets_its_index_on_open(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for v in (1, 2, 3):
        db.executescript(f"BEGIN;\n{MIGRATIONS[v]()}\nPRAGMA user_version = {v};\nCOMMIT;")
    db.execute("INSERT INTO objects (object_id, title, status, created_at, updated_at) "
               "VALUES ('OLD-1', 'Göttin mit Schlange', 'stolen', 'x', 'x')")
    db.commit()
    db.close()
    cat = Catalogue(path)
    try:
        assert _ids(cat.find_objects("gottin")) == ["OLD-1"]
    finally:
        cat.close()
