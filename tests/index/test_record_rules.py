"""Object ids and field values (issue 10, finding 10): one set of rules in index/records.py, used by
manifests, the catalogue's writes and the HTTP schemas; a bad manifest row is reported and skipped."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from artefact.index.catalogue import Catalogue
from artefact.index.errors import CatalogueError, RecordError
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
from artefact.index.manifest import read_manifest
from artefact.index.records import (
    MAX_EXTRA_CHARS,
    MAX_FIELD_LENGTH,
    MAX_ID_LENGTH,
    ObjectRecord,
    record_from_mapping,
    validate_fields,
    validate_object_id,
)

from index_helpers import SAMPLE_IMAGES

GOOD_IDS = ["INV/2021/7", "Ελλάδα-12", "a" * MAX_ID_LENGTH, "inv 7 (front)", "ÄÖÜ-ß", "مخطوطة-3", "x.y", "..."]
BAD_IDS = {
    "": "empty",
    "   ": "empty",
    "a" * (MAX_ID_LENGTH + 1): "characters",
    "a" * 70_000: "characters",
    ".": "'.'",
    "..": "'..'",
    "x\ny": "control",
    "a\x00b": "control",
    "tab\there": "control",
    "evil\u202egpj.exe": "U+202E",
    "zero\u200bwidth": "U+200B",
    "bom\ufeff": "U+FEFF",
    "line\u2028sep": "U+2028",
}


@pytest.mark.parametrize("value", GOOD_IDS)
def test_good_ids_pass_unchanged(value):
    assert validate_object_id(value) == value
    assert validate_object_id(f"  {value}  ") == value  # surrounding spaces are not part of an id


@pytest.mark.parametrize("value,word", BAD_IDS.items(), ids=lambda v: repr(v)[:20])
def test_bad_ids_are_refused_with_a_reason(value, word):
    with pytest.raises(RecordError) as err:
        validate_object_id(value)
    assert word in str(err.value)
    assert isinstance(err.value, CatalogueError)
    assert len(str(err.value)) < 400  # a 70,000-character id is not echoed back whole


@pytest.mark.parametrize("value", [None, ["list"], {"a": 1}, True, 1.5])
def test_ids_that_are_not_strings_are_refused_not_stringified(value):
    with pytest.raises(RecordError) as err:
        validate_object_id(value)
    assert "None" not in str(err.value) or value is None
    assert "string" in str(err.value)


def test_whole_numbers_are_ids_in_decimal():
    assert validate_object_id(12345) == "12345"


def test_fields_are_strings_with_limits():
    assert validate_fields({"title": "Bronze horse", "description": "two lines\nof text", "measurements": 12,
                            "maker": None, "subject": ""}) == {
        "title": "Bronze horse", "description": "two lines\nof text", "measurements": "12"}
    for bad, word in (({"title": ["list"]}, "string"), ({"title": {"a": 1}}, "string"), ({"title": True}, "string"),
                      ({"description": "x" * (MAX_FIELD_LENGTH + 1)}, "characters"),
                      ({"title": "nul\x00byte"}, "control"), ({"title": "bell\x07"}, "control")):
        with pytest.raises(RecordError) as err:
            validate_fields(bad)
        assert word in str(err.value) and next(iter(bad)) in str(err.value)


def test_record_from_mapping_keeps_extra_and_bounds_it():
    rec = record_from_mapping({"id": "A-1", "title": "t", "image_credit": "someone", "n": 3})
    assert rec == ObjectRecord("A-1", {"title": "t"}, {"image_credit": "someone", "n": 3})
    with pytest.raises(RecordError):
        record_from_mapping({"id": "A-2", "notes": "x" * (MAX_EXTRA_CHARS + 1)})
    with pytest.raises(RecordError):
        record_from_mapping({"id": None, "title": "t"})
    with pytest.raises(RecordError):
        record_from_mapping({"title": "no id at all"})


def test_the_catalogue_refuses_bad_records_itself(tmp_path):
    """Defence in depth: a caller that skips validation still cannot write a bad record."""
    cat = Catalogue(tmp_path / "c.sqlite")
    try:
        for bad in (ObjectRecord(".."), ObjectRecord("x\ny"), ObjectRecord("a" * 300),
                    ObjectRecord("ok", {"title": "t" * (MAX_FIELD_LENGTH + 1)}),
                    ObjectRecord("ok", {"title": ["list"]})):  # type: ignore[dict-item]
            with pytest.raises(RecordError), cat.transaction():
                cat.upsert_object(bad)
        assert cat.counts()["objects"] == 0
    finally:
        cat.close()


# --------------------------------------------------------------------------- through the ingest


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def photo_root(tmp_path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for n, src in enumerate(sorted(SAMPLE_IMAGES.glob("SMP-COIN-0*/*.jpg"))[:3]):
        shutil.copy(src, root / f"{n}.jpg")
    return root


def test_manifest_rows_with_bad_ids_or_values_are_reported_and_skipped(tmp_path, photo_root, tiny_embedder):
    rows = [
        {"id": "GOOD-1", "images": "0.jpg", "title": "kept"},
        {"id": None, "images": "1.jpg", "title": "null id"},
        {"id": "..", "images": "1.jpg"},
        {"id": "x\ny", "images": "1.jpg"},
        {"id": "a" * 70_000, "images": "1.jpg"},
        {"id": "evil\u202egpj", "images": "1.jpg"},
        {"id": "LIST-TITLE", "images": "1.jpg", "title": ["list"]},
        {"id": "LONG-VALUE", "images": "1.jpg", "description": "d" * (MAX_FIELD_LENGTH + 1)},
        {"id": 4711, "images": "2.jpg", "title": "numeric id"},
    ]
    manifest = _jsonl(tmp_path / "m.jsonl", rows)
    parsed = list(read_manifest(manifest))
    assert [r.record is not None for r in parsed] == [True, False, False, False, False, False, False, False, True]
    assert all(r.problem for r in parsed if r.record is None)

    with Library(tmp_path / "home") as lib:
        report = ingest_manifest(lib, tiny_embedder, manifest, photo_root, workers=0, progress=False)
        ids = sorted(r.object_id for r in lib.catalogue.list_objects(limit=100))
        assert ids == ["4711", "GOOD-1"]
        assert lib.catalogue.counts()["images"] == 2
        assert lib.catalogue.get_object("GOOD-1").fields["title"] == "kept"
    assert report.objects_created == 2
    with open(report.report_path, newline="", encoding="utf-8") as f:
        problems = [row for row in csv.DictReader(f) if row["kind"] == "error"]
    assert sorted(int(p["file"].rsplit(":", 1)[1]) for p in problems) == [2, 3, 4, 5, 6, 7, 8]
    text = " ".join(p["problem"] for p in problems)
    for word in ("string", "'..'", "control", "characters", "U+202E", "title", "description"):
        assert word in text, (word, text)
    assert max(len(p["problem"]) for p in problems) < 400


def test_csv_manifest_rows_follow_the_same_rules(tmp_path):
    path = tmp_path / "m.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "images", "title"])
        w.writerow(["OK-1", "a.jpg", "fine"])
        w.writerow(["..", "a.jpg", "dots"])
        w.writerow(["b" * 201, "a.jpg", "long"])
        w.writerow(["OK-2", "a.jpg", "t" * (MAX_FIELD_LENGTH + 1)])
        w.writerow(["rtl\u202eoverride", "a.jpg", ""])
    parsed = list(read_manifest(path))
    assert [r.record.object_id if r.record else None for r in parsed] == ["OK-1", None, None, None, None]
    assert all(r.problem for r in parsed[1:])
