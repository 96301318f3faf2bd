"""The Milvus vector store on a real Milvus Lite: escaped filter values, fields that follow the catalogue,
check and repair against rows changed behind the library's back, the home's remembered choice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("milvus_lite", reason="the scale extra (pymilvus + milvus-lite) is not installed")

from pymilvus import MilvusClient  # noqa: E402

from artefact.index.catalogue import SearchFilters  # noqa: E402
from artefact.index.home import Home  # noqa: E402
from artefact.index.library import Library  # noqa: E402
from artefact.index.records import ObjectRecord  # noqa: E402
from artefact.index.search import IMAGE, search_vectors  # noqa: E402
from artefact.index.stores.base import StoreError  # noqa: E402
from artefact.index.errors import ReadOnlyHomeError  # noqa: E402
from artefact.index.stores.choice import StoreChoiceError, parse_choice, remembered, settle  # noqa: E402
from artefact.index.stores.milvus import MilvusStore, collection_name, filter_expression, quote  # noqa: E402

from test_search import DIM, basis, build, fake_model, unit  # noqa: E402

# Country names that would break or widen a filter expression pasted in without escaping.
HOSTILE = [
    'Côte d"Ivoire',
    'x" or country != "',
    "back\\slash\\",
    'quote\\"mix',
    "new\nline\ttab",
    "日本",
]


def client_of(lib: Library) -> MilvusClient:
    """A second, raw client on the library's Milvus Lite file (the same in-process server)."""
    return MilvusClient(uri=lib.store_choice.location)


def ids_of(matches) -> list[str]:
    return [m.record.object_id for m in matches]


@pytest.fixture
def hostile(tmp_path):
    """One object per hostile country (all near the query), plus a plain one nearest of all."""
    objects = [("PLAIN", {"country": "France"}, unit(basis(0) + 0.01 * basis(1))[None])]
    objects += [(f"H-{n}", {"country": c}, unit(basis(0) + 0.1 * (n + 1) * basis(1))[None]) for n, c in enumerate(HOSTILE)]
    with build(tmp_path / "home", objects, store="milvus-lite") as lib:
        yield lib


def test_each_hostile_value_matches_only_itself(hostile):
    lib = hostile
    assert lib.vectors.kind == "milvus"
    for n, country in enumerate(HOSTILE):
        got = search_vectors(lib, basis(0)[None], [IMAGE], k=10, filters=SearchFilters(country=(country,)))
        assert ids_of(got) == [f"H-{n}"], country
        # And pushed down as one exact literal: Milvus itself returns that row alone.
        expr = filter_expression(SearchFilters(country=(country,)))
        rows = client_of(lib).query(lib.vectors.collection, filter=expr, output_fields=["country"])
        assert [r["country"] for r in rows] == [country.lower()]


def test_quote_refuses_controls_no_record_can_hold():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError, match=r"U\+0000"):
        quote("nul\x00")
    # In a filter such a value simply matches nothing (no record holds one); never an error.
    assert filter_expression(SearchFilters(country=("nul\x00",), include_recovered=True)) == "id < 0"


def test_filter_expression_means_what_where_means():
    f = SearchFilters(status=("Looted",), country=("ITALY", "greece"))
    assert filter_expression(f) == 'status in ["looted"] and country in ["greece", "italy"] and status != "recovered"'
    assert filter_expression(SearchFilters(status=("recovered",))) == 'status in ["recovered"]'
    assert filter_expression(SearchFilters(include_recovered=True)) is None


def test_changes_made_by_another_library_reach_milvus_fields(tmp_path):
    objects = [(f"S-{i}", {"status": "stolen", "country": "Italy"}, unit(basis(0) + 0.1 * (i + 1) * basis(1))[None])
               for i in range(4)]
    with build(tmp_path / "home", objects, store="milvus-lite") as lib:
        q = basis(0)[None]
        assert ids_of(search_vectors(lib, q, [IMAGE], k=1)) == ["S-0"]
        with Library(tmp_path / "home") as other:  # as another process would: its own catalogue connection
            with other.writing():
                other.set_status("S-0", "recovered")
            rows = client_of(lib).query(lib.vectors.collection, filter='status == "recovered"', output_fields=["id"])
            assert len(rows) == 1  # written by set_status itself, before any search
            with other.writing():
                with other.catalogue.transaction():  # a re-ingested record: new country, same photo
                    other.catalogue.upsert_object(ObjectRecord("S-1", {"status": "stolen", "country": "Greece"}))
        assert ids_of(search_vectors(lib, q, [IMAGE], k=10)) == ["S-1", "S-2", "S-3"]
        assert ids_of(search_vectors(lib, q, [IMAGE], k=10, filters=SearchFilters(country=("greece",)))) == ["S-1"]
        # The rows themselves were rewritten, not merely filtered after the fact.
        rows = client_of(lib).query(lib.vectors.collection, filter='status == "recovered" or country == "greece"',
                                    output_fields=["status", "country"])
        assert sorted((r["status"], r["country"]) for r in rows) == [("recovered", "italy"), ("stolen", "greece")]
        assert lib.check() == []


def test_check_sees_rows_changed_behind_its_back_and_repair_restores_them(tmp_path):
    objects = [(f"C-{i}", {"status": "stolen"}, unit(basis(i % DIM) + 0.2 * basis((i + 1) % DIM))[None]) for i in range(6)]
    with build(tmp_path / "home", objects, store="milvus-lite") as lib:
        image_ids = lib.catalogue.image_ids()
        raw = client_of(lib)
        raw.delete(lib.vectors.collection, ids=[int(image_ids[0])])
        row = raw.get(lib.vectors.collection, ids=[int(image_ids[1])])[0]
        raw.upsert(lib.vectors.collection, [{**row, "status": "recovered"}])  # hides C-1 from default searches
        problems = lib.check()
        assert any("1 catalogue images have no vector" in p for p in problems), problems
        assert any("1 vectors in Milvus carry filter fields" in p for p in problems), problems
        report = lib.repair()
        assert report["added"] == 1 and report["fields"] == 1 and report["after"] == []
    with Library(tmp_path / "home") as lib:
        assert lib.check() == []
        got = ids_of(search_vectors(lib, basis(1)[None], [IMAGE], k=1))
        assert got == ["C-1"]


def test_repair_rebuilds_a_collection_whose_vectors_differ(tmp_path):
    objects = [(f"V-{i}", {}, unit(basis(i) + 0.1 * basis(i + 1))[None]) for i in range(3)]
    with build(tmp_path / "home", objects, store="milvus-lite") as lib:
        raw = client_of(lib)
        row = raw.get(lib.vectors.collection, ids=[int(lib.catalogue.image_ids()[0])])[0]
        raw.upsert(lib.vectors.collection, [{**row, "vector": basis(9).tolist()}])
        assert any("index vectors differ" in p for p in lib.check())
        assert lib.repair()["after"] == []
        assert ids_of(search_vectors(lib, basis(0)[None], [IMAGE], k=1)) == ["V-0"]


def test_one_collection_per_model(tmp_path):
    shared = str(tmp_path / "shared.db")  # two homes, two models, one Milvus
    a, b = tmp_path / "a", tmp_path / "b"
    for home, dim in ((a, DIM), (b, 8)):
        settle(Home(home), f"milvus-lite:{shared}")
    objects = [("A-0", {}, basis(0)[None])]
    with build(a, objects, store="faiss") as lib_a:  # "faiss" adds nothing: the home already chose Milvus
        with build(b, [("B-0", {}, unit(np.ones(8, np.float32))[None])], dim=8) as lib_b:
            assert lib_a.vectors.collection != lib_b.vectors.collection
            assert lib_a.vectors.collection == collection_name(fake_model(DIM).to_dict())
            assert sorted(MilvusClient(uri=shared).list_collections()) == sorted(
                [lib_a.vectors.collection, lib_b.vectors.collection])
            assert lib_a.vectors.ntotal == 1 and lib_b.vectors.ntotal == 1


def test_optimize_says_it_does_not_apply_and_stats_name_the_store(tmp_path):
    with build(tmp_path / "home", [("O-0", {}, basis(0)[None])], store="milvus-lite") as lib:
        with pytest.raises(StoreError, match="optimize does not apply.*Milvus"):
            lib.optimize()
        assert lib.optimize_due() == []
        index = lib.stats()["index"]
        assert index["kind"] == "milvus" and index["params"]["store"] == "milvus-lite:vectors.db"
        assert isinstance(lib.vectors, MilvusStore)


def test_the_home_keeps_its_store(tmp_path):
    home = Home(tmp_path / "home")
    chosen = settle(home, "milvus-lite:vectors.db")
    assert chosen.location == str((tmp_path / "home" / "vectors.db").resolve())  # relative: inside the home
    assert remembered(home) == chosen and settle(home, None) == chosen
    assert settle(home, " milvus-lite:vectors.db ").same_as(chosen)
    with pytest.raises(StoreChoiceError, match="keeps its vectors in milvus-lite:vectors.db, not faiss"):
        settle(home, "faiss")
    with pytest.raises(StoreChoiceError, match="not milvus://db.example:19530"):
        settle(home, "milvus://db.example:19530")
    faiss_home = tmp_path / "faiss-home"
    build(faiss_home, [("F-0", {}, basis(0)[None])]).close()
    with pytest.raises(StoreChoiceError, match="already keeps its vectors in FAISS files"):
        settle(Home(faiss_home), "milvus-lite:vectors.db")
    assert settle(Home(faiss_home), "faiss").backend == "faiss"


@pytest.mark.parametrize("spec, message", [
    ("milvus-lite:vectors", "ending in .db"),
    ("milvus://", "use milvus://HOST:PORT"),
    ("milvus://user:secret@db:19530", "credentials"),
    ("milvus://db:port", "not a number"),
    ("milvus://db:19530/a/b", "one database"),
    ("milvus://db:19530?index=BEST", "not one of"),
    ("qdrant://db", "unknown vector store"),
    ("milvus://db:19530?readonly=yes", "true or false"),
    ("milvus-lite:v.db?replicas=2", "unknown option replicas"),
])
def test_bad_store_names_are_refused(tmp_path, spec, message):
    with pytest.raises(StoreChoiceError, match=message):
        parse_choice(spec, Home(tmp_path))


def test_server_names_are_read():
    c = parse_choice("milvus://milvus.internal:19531/artefact?index=hnsw", Home(Path("/x")))
    assert (c.server_uri, c.database, c.index_type) == ("http://milvus.internal:19531", "artefact", "HNSW")
    assert parse_choice("milvus://milvus.internal", Home(Path("/x"))).location == "milvus.internal:19530"
    assert not c.read_only and parse_choice("milvus://m:1/a?readonly=true", Home(Path("/x"))).read_only


def test_a_search_server_reads_the_writers_collection_and_never_writes_it(tmp_path):
    """Where the catalogue lives: a writer fills the shared collection; a search server holds a copy of the
    catalogue one step behind (as from a bundle) and reads the collection with `?readonly=true`."""
    shared = tmp_path / "shared.db"
    writer_home, reader_home = tmp_path / "writer", tmp_path / "reader"
    settle(Home(writer_home), f"milvus-lite:{shared}")
    objects = [(f"W-{i}", {"status": "stolen"}, unit(basis(0) + 0.1 * (i + 1) * basis(1))[None]) for i in range(4)]
    q = basis(0)[None]
    with build(writer_home, objects) as writer:  # the home already chose Milvus
        reader_home.mkdir()
        with sqlite3.connect(writer_home / "catalogue.sqlite") as src, sqlite3.connect(reader_home / "catalogue.sqlite") as dst:
            src.backup(dst)  # the catalogue as a bundle import would deliver it
        assert settle(Home(reader_home), f"milvus-lite:{shared}?readonly=true").read_only
        # The writer moves on: a removal, a status change, a new object nearest of all.
        writer.remove_object("W-3")
        with writer.writing():
            writer.set_status("W-0", "recovered")
            with writer.catalogue.transaction():
                pk, _ = writer.catalogue.upsert_object(ObjectRecord("W-NEW", {"status": "stolen"}))
                new_id = writer.catalogue.add_image(pk, "W-NEW/0.jpg", "W-NEW-0", 1, 0, 8, 8, basis(0))
            writer.add_vectors(np.asarray([new_id], np.int64), basis(0)[None])
            writer.save()
        collection = writer.vectors.collection
        rows_before = sorted(r["id"] for r in client_of(writer).query(collection, filter="id >= 0", output_fields=["id"]))
        with Library(reader_home) as reader:
            # W-NEW: not in this copy yet, dropped; W-0: recovered in Milvus, left out; W-3: gone from Milvus.
            assert ids_of(search_vectors(reader, q, [IMAGE], k=10)) == ["W-1", "W-2"]
            with pytest.raises(StoreError, match="read-only"):
                reader.repair()
            with pytest.raises(StoreError, match="read-only"):
                reader.vectors.add(np.asarray([999], np.int64), basis(1)[None])
            # A write is refused before any catalogue row changes, not after the rows are committed.
            for write in (lambda: reader.remove_object("W-1"), lambda: reader.set_status("W-1", "recovered")):
                with pytest.raises(ReadOnlyHomeError, match="search server"):
                    with reader.writing():
                        write()
            assert reader.catalogue.get_object("W-1") is not None
        rows_after = sorted(r["id"] for r in client_of(writer).query(collection, filter="id >= 0", output_fields=["id"]))
        assert rows_after == rows_before  # the stale copy re-added nothing (W-3) and deleted nothing (W-NEW)
        assert ids_of(search_vectors(writer, q, [IMAGE], k=10)) == ["W-NEW", "W-1", "W-2"]
