"""Helpers for the bundle tests (a uniquely named module: imported as `bundle_helpers`)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

from artefact.index.catalogue import BUNDLE_META
from artefact.index.home import Home
from artefact.index.library import Library
from artefact.index.search import search

from index_helpers import SAMPLE_CSV, SAMPLE_QUERIES  # type: ignore[import-not-found]

TABLES = ("objects", "images", "features", "meta", "history", "row_changes", "sqlite_sequence")


def subset_csv(path: Path, drop: set[str]) -> Path:
    """The sample catalogue without the objects named in `drop`."""
    with open(SAMPLE_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["id"] not in drop)
    return path


def home_files(root: Path) -> dict[str, str]:
    """Every file (and link) under a folder with its SHA-256 (or link target): 'untouched' means equal."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for folder, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        out.update({str((Path(folder) / d).relative_to(root)) + "/": "dir" for d in dirs})
    return out


def catalogue_rows(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """All catalogue content, table by table, sorted (the post's own bundle record left out)."""
    path = Home(home).current_catalogue()
    db = sqlite3.connect(path)  # not mode=ro: that would leave -wal/-shm files behind
    try:
        db.execute("PRAGMA query_only = 1")
        out = {}
        for table in TABLES:
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] != BUNDLE_META]
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        db.close()


def read_queries() -> list[Path]:
    with open(SAMPLE_QUERIES / "queries.csv", newline="") as f:
        return [SAMPLE_QUERIES / row["query"] for row in csv.DictReader(f)]


def answers(library: Library, embedder: Any, queries: list[Path] | None = None) -> list[Any]:
    """What an officer would see for each sample query: ids, scores, inliers and verdicts."""
    out = []
    for query in queries or read_queries():
        result = search(library, embedder, [query], k=5, rerank=20)
        out.append((
            query.name, result.verdict,
            [(m.record.object_id, m.record.fields.get("status"), round(m.score, 5), m.inliers, m.verdict)
             for m in result.matches],
        ))
    return out


def members(bundle: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(bundle) as tar:
        return tar.getmembers()


def without_member(bundle: Path, name: str, out: Path) -> Path:
    """A copy of the bundle with one member's header, content and padding cut out (otherwise intact)."""
    data = bundle.read_bytes()
    for info in members(bundle):
        if info.name == name:
            end = info.offset_data + info.size + (-info.size) % 512
            out.write_bytes(data[: info.offset] + data[end:])
            return out
    raise KeyError(name)


def replace_member_content(bundle: Path, name: str, content: bytes, out: Path) -> Path:
    """A copy with one member's content replaced by bytes of the same length."""
    data = bytearray(bundle.read_bytes())
    for info in members(bundle):
        if info.name == name:
            assert len(content) == info.size
            data[info.offset_data : info.offset_data + info.size] = content
            out.write_bytes(bytes(data))
            return out
    raise KeyError(name)


def member_content(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def flipped(data: bytes, position: int) -> io.BytesIO:
    b = bytearray(data)
    b[position] ^= 0x01
    return io.BytesIO(bytes(b))
