"""Manifest parsing (CSV / JSON Lines) and image path resolution with root containment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from artefact.index.errors import ManifestError
from artefact.index.manifest import read_manifest, resolve_images

from index_helpers import SAMPLE


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch_jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really decoded here")
    return path


def test_sample_csv_and_jsonl_parse_to_the_same_records():
    csv_rows = list(read_manifest(SAMPLE / "catalogue.csv"))
    jsonl_rows = list(read_manifest(SAMPLE / "catalogue.jsonl"))
    assert len(csv_rows) == len(jsonl_rows) == 27
    assert all(r.problem is None and r.record is not None for r in csv_rows + jsonl_rows)
    for a, b in zip(csv_rows, jsonl_rows):
        assert a.record.object_id == b.record.object_id
        assert a.record.fields == b.record.fields
        assert a.record.extra == b.record.extra
        assert a.images == b.images
    ids = [r.record.object_id for r in csv_rows]
    assert len(set(ids)) == 27
    by_id = {r.record.object_id: r for r in csv_rows}
    assert by_id["SMP-PAINT-01"].images == ["SMP-PAINT-01/1.jpg", "SMP-PAINT-01/2.jpg"]
    assert by_id["SMP-COIN-05"].record.fields["status"] == "recovered"
    assert by_id["SMP-COIN-04"].record.fields["country"] == "Türkiye"
    # Unknown columns (image_credit, image_licence) are kept as extra data, not dropped.
    assert set(by_id["SMP-ARCH-01"].record.extra) == {"image_credit", "image_licence"}
    assert "CC BY 2.0" in by_id["SMP-ARCH-01"].record.extra["image_licence"]
    # CSV line numbers are the physical lines (header is line 1).
    assert csv_rows[0].line == 2 and jsonl_rows[0].line == 1


def test_sample_image_refs_resolve_inside_root():
    rows = list(read_manifest(SAMPLE / "catalogue.csv"))
    resolved = [x for r in rows for x in resolve_images(r.images, SAMPLE / "images")]
    assert all(problem is None for _, _, problem in resolved)
    assert len(resolved) == 33  # 27 objects, 33 photos (README)


def test_csv_semicolon_images_and_extra_columns(tmp_path):
    m = write(
        tmp_path / "m.csv",
        "id,images,title,status,lot_number,photographer\n"
        "INV-1, a/1.jpg ; a/2.jpg;;a/3.jpg ,Vase,looted,L-17,Anna\n"
        "INV-2,b,Coin,,,\n",
    )
    rows = list(read_manifest(m))
    assert [r.images for r in rows] == [["a/1.jpg", "a/2.jpg", "a/3.jpg"], ["b"]]
    r1, r2 = (r.record for r in rows)
    assert r1.fields == {"title": "Vase", "status": "looted"}
    assert r1.extra == {"lot_number": "L-17", "photographer": "Anna"}
    assert r2.fields == {"title": "Coin"} and r2.extra == {}  # empty cells are left out


def test_csv_with_bom_and_utf8(tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes("\ufeffid,images,title\nΑΡ-1,x.jpg,Χάλκινο 🏺 تمثال\n".encode("utf-8"))
    (row,) = list(read_manifest(m))
    assert row.record.object_id == "ΑΡ-1"
    assert row.record.fields["title"] == "Χάλκινο 🏺 تمثال"


def test_jsonl_images_list_or_string(tmp_path):
    lines = [
        {"id": "A", "images": ["a/1.jpg", "a/2.jpg"], "status": "stolen", "donor": {"name": "x"}},
        {"id": "B", "images": "b/1.jpg;b/2.jpg"},
        {"id": "C", "images": 5},
        {"object_id": "D", "photos": "d"},
    ]
    m = write(tmp_path / "m.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    rows = list(read_manifest(m))
    assert len(rows) == 4
    assert rows[0].images == ["a/1.jpg", "a/2.jpg"]
    assert rows[0].record.extra == {"donor": {"name": "x"}}
    assert rows[1].images == ["b/1.jpg", "b/2.jpg"]
    assert rows[2].record is None and "images" in rows[2].problem
    assert rows[3].record.object_id == "D" and rows[3].images == ["d"]


def test_missing_id_is_a_problem_row_not_an_abort(tmp_path):
    m = write(tmp_path / "m.csv", "id,images\n,x.jpg\nOK-1,y.jpg\n   ,z.jpg\n")
    rows = list(read_manifest(m))
    assert len(rows) == 3
    assert rows[0].record is None and "id" in rows[0].problem and rows[0].line == 2
    assert rows[1].record.object_id == "OK-1" and rows[1].problem is None
    assert rows[2].record is None and rows[2].line == 4
    jm = write(tmp_path / "m.jsonl", '{"images": "x.jpg", "title": "no id"}\n{"id": "J-1", "images": "y.jpg"}\n')
    rows = list(read_manifest(jm))
    assert rows[0].record is None and "id" in rows[0].problem and rows[0].line == 1
    assert rows[1].record.object_id == "J-1"


def test_bad_json_line_is_reported_and_reading_goes_on(tmp_path):
    m = write(
        tmp_path / "m.jsonl",
        '{"id": "A", "images": "a.jpg"}\n'
        '{"id": "B", "images": "b.jpg"\n'  # unterminated
        '["not", "an", "object"]\n'
        '{"id": "C", "images": "c.jpg"}\n',
    )
    rows = list(read_manifest(m))
    assert [r.line for r in rows] == [1, 2, 3, 4]
    assert rows[1].record is None and "JSON" in rows[1].problem
    assert rows[2].record is None and "object" in rows[2].problem
    assert [r.record.object_id for r in rows if r.record] == ["A", "C"]


def test_manifest_level_errors(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        list(read_manifest(tmp_path / "nope.csv"))
    with pytest.raises(ManifestError, match=r"\.csv"):
        list(read_manifest(write(tmp_path / "m.xlsx", "id,images\n")))
    with pytest.raises(ManifestError, match="'id' column"):
        list(read_manifest(write(tmp_path / "noid.csv", "name,images\nx,y.jpg\n")))


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "images"
    for name in ("obj/c.jpg", "obj/a.jpg", "obj/b.PNG", "obj/sub/0.jpg", "obj/notes.txt", "single.jpg"):
        touch_jpg(r / name)
    (r / "empty").mkdir()
    return r


def test_folder_ref_expands_to_sorted_image_files(root):
    got = list(resolve_images(["obj"], root))
    assert [ref for ref, _, _ in got] == ["obj/a.jpg", "obj/b.PNG", "obj/c.jpg", "obj/sub/0.jpg"]
    assert all(p is not None and p.is_file() and p.is_absolute() and problem is None for _, p, problem in got)
    # A trailing slash means the same folder.
    assert [ref for ref, _, _ in resolve_images(["obj/"], root)] == [ref for ref, _, _ in got]


def test_plain_file_and_missing_file_and_empty_folder(root):
    (ok,) = list(resolve_images(["single.jpg"], root))
    assert ok == ("single.jpg", (root / "single.jpg").resolve(), None)
    (missing,) = list(resolve_images(["nope.jpg"], root))
    assert missing[1] is None and "not found" in missing[2]
    (empty,) = list(resolve_images(["empty"], root))
    assert empty[1] is None and "no image" in empty[2]


@pytest.mark.parametrize("ref", ["../outside.jpg", "obj/../../outside.jpg", "ABSOLUTE"])
def test_paths_outside_root_are_refused(root, ref):
    outside = touch_jpg(root.parent / "outside.jpg")
    if ref == "ABSOLUTE":
        ref = str(outside)
    (got,) = list(resolve_images([ref], root))
    assert got[1] is None, f"{ref!r} resolved to {got[1]}"
    assert "outside" in got[2] and "refused" in got[2]


def test_absolute_system_path_refused(root):
    (got,) = list(resolve_images(["/etc/passwd"], root))
    assert got[1] is None and "refused" in got[2]


def test_symlinks_escaping_root_are_refused(root, tmp_path):
    secret_dir = tmp_path / "secret"
    secret = touch_jpg(secret_dir / "s.jpg")
    os.symlink(secret, root / "link.jpg")
    os.symlink(secret_dir, root / "linkdir")
    os.symlink(secret, root / "obj" / "zz-link.jpg")  # a link inside an allowed folder
    (got,) = list(resolve_images(["link.jpg"], root))
    assert got[1] is None and "refused" in got[2]
    got = list(resolve_images(["linkdir"], root))
    assert all(p is None for _, p, _ in got) and got
    got = list(resolve_images(["linkdir/s.jpg"], root))
    assert got[0][1] is None and "refused" in got[0][2]
    folder = {ref: (p, problem) for ref, p, problem in resolve_images(["obj"], root)}
    assert folder["obj/zz-link.jpg"][0] is None and "refused" in folder["obj/zz-link.jpg"][1]
    assert folder["obj/a.jpg"][0] is not None  # the rest of the folder still resolves


def test_symlink_inside_root_is_allowed(root):
    os.symlink(root / "single.jpg", root / "alias.jpg")
    (got,) = list(resolve_images(["alias.jpg"], root))
    assert got[1] == (root / "single.jpg").resolve() and got[2] is None
