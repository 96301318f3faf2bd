"""SQLite catalogue: schema, upserts, statuses, removal, unicode, persistence, bad files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from artefact.index.errors import CatalogueError, ObjectNotFoundError
from artefact.index.catalogue import SCHEMA_VERSION, Catalogue, SearchFilters
from artefact.index.records import ObjectRecord

DIM = 8


@pytest.fixture
def cat(tmp_path):
    c = Catalogue(tmp_path / "catalogue.sqlite")
    yield c
    c.close()


def add_image(cat: Catalogue, pk: int, path: str, seed: int = 0) -> int:
    vec = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    with cat.transaction():
        return cat.add_image(pk, path, f"sha-{path}", 100, 1, 64, 48, vec)


def upsert(cat: Catalogue, rec: ObjectRecord) -> tuple[int, str]:
    with cat.transaction():
        return cat.upsert_object(rec)


def test_schema_version_and_generation(cat, tmp_path):
    assert SCHEMA_VERSION >= 1
    assert cat.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.generation == 0
    tables = {r[0] for r in cat.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"objects", "images", "meta", "history"} <= tables


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(CatalogueError, match="newer"):
        Catalogue(path)


def test_upsert_create_update_unchanged(cat):
    rec = ObjectRecord("INV-1", {"title": "Bronze figure", "status": "looted", "country": "Iraq"}, {"lot": "7"})
    pk, change = upsert(cat, rec)
    assert change == "created" and pk > 0
    pk2, change = upsert(cat, ObjectRecord("INV-1", dict(rec.fields), dict(rec.extra)))
    assert (pk2, change) == (pk, "unchanged")
    # Surrounding whitespace and status case do not count as a change.
    pk3, change = upsert(cat, ObjectRecord("INV-1", {**rec.fields, "title": " Bronze figure ", "status": "LOOTED"}, {"lot": "7"}))
    assert (pk3, change) == (pk, "unchanged")
    pk4, change = upsert(cat, ObjectRecord("INV-1", {**rec.fields, "title": "Bronze figurine"}, {"lot": "7"}))
    assert (pk4, change) == (pk, "updated")
    assert cat.get_object("INV-1").fields["title"] == "Bronze figurine"
    # A change in extra data alone is an update too.
    _, change = upsert(cat, ObjectRecord("INV-1", {**rec.fields, "title": "Bronze figurine"}, {"lot": "8"}))
    assert change == "updated"
    assert cat.get_object("INV-1").extra == {"lot": "8"}
    assert cat.counts()["objects"] == 1


def test_default_status_is_stolen(cat):
    upsert(cat, ObjectRecord("INV-2", {"title": "x"}))
    assert cat.get_object("INV-2").fields["status"] == "stolen"


def test_bad_status_raises_catalogue_error(cat):
    with pytest.raises(CatalogueError, match="status"):
        upsert(cat, ObjectRecord("INV-3", {"status": "borrowed"}))
    with pytest.raises(ObjectNotFoundError):
        cat.get_object("INV-3")
    upsert(cat, ObjectRecord("INV-3", {"status": "missing"}))
    with pytest.raises(CatalogueError, match="status"):
        cat.set_status("INV-3", "misplaced")
    assert cat.get_object("INV-3").fields["status"] == "missing"
    assert cat.set_status("INV-3", "Recovered") == "missing"
    assert cat.get_object("INV-3").fields["status"] == "recovered"
    with pytest.raises(ObjectNotFoundError):
        cat.set_status("NOPE", "stolen")


def test_status_check_constraint_in_sql(cat):
    upsert(cat, ObjectRecord("INV-4", {}))
    with pytest.raises(sqlite3.IntegrityError):
        cat.db.execute("UPDATE objects SET status = 'sold' WHERE object_id = 'INV-4'")


def test_remove_object_returns_image_ids_and_cascades(cat):
    pk_a, _ = upsert(cat, ObjectRecord("A", {}))
    pk_b, _ = upsert(cat, ObjectRecord("B", {}))
    a1 = add_image(cat, pk_a, "a/1.jpg", 1)
    a2 = add_image(cat, pk_a, "a/2.jpg", 2)
    b1 = add_image(cat, pk_b, "b/1.jpg", 3)
    gen = cat.generation
    assert gen >= 3
    with cat.transaction():
        removed = cat.remove_object("A")
    assert sorted(removed) == sorted([a1, a2])
    assert cat.generation > gen
    assert cat.object_images("A") == []
    assert [im.image_id for im in cat.object_images("B")] == [b1]
    assert cat.image_ids().tolist() == [b1]
    assert cat.counts()["images"] == 1
    with pytest.raises(ObjectNotFoundError):
        with cat.transaction():
            cat.remove_object("A")
    # Image ids are never reused after a removal (they are FAISS ids).
    pk_c, _ = upsert(cat, ObjectRecord("C", {}))
    c1 = add_image(cat, pk_c, "c/1.jpg", 4)
    assert c1 > max(a1, a2, b1)
    assert cat.integrity_problems() == []


def test_vectors_round_trip(cat):
    pk, _ = upsert(cat, ObjectRecord("V", {}))
    want = {}
    for n in range(5):
        vec = np.random.default_rng(n).standard_normal(DIM).astype(np.float32)
        with cat.transaction():
            want[cat.add_image(pk, f"v/{n}.jpg", f"s{n}", 1, 1, 1, 1, vec)] = vec
    chunks = list(cat.vectors(chunk=2))
    assert len(chunks) == 3
    got = {int(i): row for ids, mat in chunks for i, row in zip(ids, mat)}
    assert got.keys() == want.keys()
    for i in want:
        np.testing.assert_array_equal(got[i], want[i])
    some = sorted(want)[1:3]
    (ids, mat), = list(cat.vectors(some))
    assert ids.tolist() == some


UNICODE = {
    "title": "تمثال برونزي — Χάλκινο άγαλμα 🏺",
    "inscriptions": "ΑΛΕΞΑΝΔΡΟΥ ΒΑΣΙΛΕΩΣ",
    "description": "نقش على الحجر، القرن الثاني 🪙✨",
    "maker": "Ἀπελλῆς",
    "country": "Ελλάδα",
}


def test_unicode_fields_round_trip_and_survive_reopen(tmp_path):
    path = tmp_path / "catalogue.sqlite"
    cat = Catalogue(path)
    oid = "ΑΡ-٠٠١-🗿"
    rec = ObjectRecord(oid, {**UNICODE, "status": "looted"}, {"نسبة": "مصدر 📷", "σημείωση": ["α", "β"]})
    with cat.transaction():
        pk, change = cat.upsert_object(rec)
        cat.add_image(pk, "εικόνα/صورة 1.jpg", "ab" * 32, 123, 456, 10, 20, np.ones(DIM, np.float32))
        cat.log_change("τεστ", "create", oid, {"σ": "ع"})
    got = cat.get_object(oid)
    for k, v in UNICODE.items():
        assert got.fields[k] == v
    assert got.extra == rec.extra
    cat.close()

    cat = Catalogue(path)  # reopen: data and schema kept, nothing re-migrated away
    try:
        got = cat.get_object(oid)
        assert got.fields["title"] == UNICODE["title"]
        assert got.fields["status"] == "looted"
        assert got.extra == rec.extra
        (img,) = cat.object_images(oid)
        assert img.path == "εικόνα/صورة 1.jpg" and img.size_bytes == 123 and (img.width, img.height) == (10, 20)
        assert cat.generation == 1
        assert cat.history(oid)[0]["detail"] == {"σ": "ع"}
        _, change = upsert(cat, ObjectRecord(oid, {**UNICODE, "status": "looted"}, rec.extra))
        assert change == "unchanged"
    finally:
        cat.close()


@pytest.mark.parametrize("stored", ["Ελλάδα", "Österreich", "Česko", "Türkiye"], ids=["greek", "german", "czech", "turkish"])
def test_filter_on_non_ascii_value_is_case_insensitive(cat, stored):
    """SearchFilters lower-cases the wanted values in Python; the stored value must match too."""
    pk, _ = upsert(cat, ObjectRecord("U-1", {"country": stored}))
    add_image(cat, pk, "u.jpg")
    upsert(cat, ObjectRecord("U-2", {"country": "Italy"}))
    for wanted in (stored, stored.lower(), stored.upper()):
        got = [r.object_id for r in cat.list_objects(SearchFilters(country=(wanted,)))]
        assert got == ["U-1"], f"filter country={wanted!r} on stored {stored!r} found {got}"
        assert len(cat.image_ids(SearchFilters(country=(wanted,)))) == 1


def test_reopen_keeps_data(tmp_path):
    path = tmp_path / "c.sqlite"
    cat = Catalogue(path)
    for i in range(20):
        pk, _ = upsert(cat, ObjectRecord(f"O-{i:02d}", {"country": "Italy" if i % 2 else "Greece"}))
        add_image(cat, pk, f"{i}.jpg", i)
    gen = cat.generation
    cat.close()
    cat = Catalogue(path)
    try:
        assert cat.counts()["objects"] == 20 and cat.counts()["images"] == 20
        assert cat.generation == gen
        assert len(cat.image_ids(SearchFilters(country=("italy",)))) == 10
    finally:
        cat.close()


def test_rolled_back_transaction_leaves_nothing(cat):
    with pytest.raises(RuntimeError):
        with cat.transaction():
            upsert(cat, ObjectRecord("TX", {}))
            raise RuntimeError("boom")
    with pytest.raises(ObjectNotFoundError):
        cat.get_object("TX")


@pytest.mark.parametrize(
    "content",
    [b"this is a plain text file, not a database\n" * 200, b"\x00\x01garbage" * 1000, b"SQLite format 3\x00" + b"\xff" * 4000],
)
def test_non_sqlite_file_gives_catalogue_error(tmp_path, content):
    path = tmp_path / "catalogue.sqlite"
    path.write_bytes(content)
    with pytest.raises(CatalogueError, match="not a usable catalogue"):
        Catalogue(path)
    assert path.read_bytes() == content, "a foreign file must not be modified"


def test_search_filters_where():
    f = SearchFilters(country=("Italy", "GREECE"), object_type=("coin",))
    where, params = f.where()
    assert sorted(params) == ["coin", "greece", "italy"]
    assert "lower(o.country) IN (?, ?)" in where and "lower(o.object_type) IN (?)" in where
    assert "o.status != 'recovered'" in where
    assert "recovered" not in SearchFilters(include_recovered=True).where()[0]
    assert "!= 'recovered'" not in SearchFilters(status=("Recovered",)).where()[0]
