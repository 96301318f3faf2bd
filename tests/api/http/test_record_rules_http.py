"""Object ids and field values over HTTP (issue 10, finding 10): refused with 422 and a reason,
nothing written; the rules are index/records.py's, the same as for manifests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from artefact.index.records import MAX_FIELD_LENGTH, MAX_ID_LENGTH

BAD_RECORDS: list[tuple[str, dict[str, Any], str]] = [
    ("null id", {"id": None, "title": "t"}, "id"),
    ("list id", {"id": ["A"], "title": "t"}, "string"),
    ("long id", {"id": "a" * 70_000}, "characters"),
    ("dots", {"id": ".."}, "'..'"),
    ("dot", {"id": "."}, "'.'"),
    ("newline", {"id": "x\ny"}, "control"),
    ("nul", {"id": "a\x00b"}, "control"),
    ("bidi override", {"id": "evil\u202egpj.exe"}, "U+202E"),
    ("list title", {"id": "REC-LIST-TITLE", "title": ["list"]}, "title"),
    ("object title", {"id": "REC-OBJ-TITLE", "title": {"a": 1}}, "title"),
    ("long value", {"id": "REC-LONG-VALUE", "description": "d" * (MAX_FIELD_LENGTH + 1)}, "description"),
]


def _objects(client: Any) -> int:
    r = client.get("/v1/stats")
    assert r.status_code == 200, r.text
    return int(r.json()["objects"])


@pytest.mark.parametrize("name,record,word", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_create_refuses_bad_ids_and_values(live, helpers, catalogue_jpeg, name, record, word) -> None:
    curator = live.client("curator")
    before = _objects(curator)
    r = curator.post("/v1/objects", data={"record": json.dumps(record)}, files=helpers.upload(helpers.distinct_photo(900)))
    assert r.status_code == 422, (name, r.status_code, r.text[:300])
    assert word in r.json()["detail"], r.json()
    assert _objects(curator) == before


def test_create_accepts_the_edges_of_the_rules(live, helpers) -> None:
    curator = live.client("curator")
    oid = "REC-" + "é" * (MAX_ID_LENGTH - 4)
    record = {"id": oid, "title": "t" * MAX_FIELD_LENGTH, "description": "two lines\nof text"}
    r = curator.post("/v1/objects", data={"record": json.dumps(record)}, files=helpers.upload(helpers.distinct_photo(901)))
    assert r.status_code == 201, r.text[:300]
    assert r.json()["id"] == oid and r.json()["fields"]["description"] == "two lines\nof text"
    got = curator.get("/v1/objects/" + oid)  # an id that was created can be fetched
    assert got.status_code == 200 and got.json()["fields"]["title"] == "t" * MAX_FIELD_LENGTH
    assert curator.delete("/v1/objects/" + oid).status_code == 200


@pytest.mark.parametrize("fields,word", [
    ({"title": "t" * (MAX_FIELD_LENGTH + 1)}, "title"),
    ({"maker": "a\x00b"}, "control"),
    ({"title": ["list"]}, "title"),
    ({"title": None}, "title"),
])
def test_update_refuses_bad_values(live, fields, word) -> None:
    curator = live.client("curator")
    before = curator.get("/v1/objects/SMP-PAINT-01").json()["fields"]
    r = curator.patch("/v1/objects/SMP-PAINT-01", json={"fields": fields})
    assert r.status_code == 422, r.text[:300]
    assert word in json.dumps(r.json()), r.json()
    assert curator.get("/v1/objects/SMP-PAINT-01").json()["fields"] == before
