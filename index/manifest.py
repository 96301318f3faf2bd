"""Bulk-ingest manifests: CSV or JSON Lines, one row per object, streamed row by row."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from artefact.index.errors import ManifestError, RecordError
from artefact.index.records import ObjectRecord, record_from_mapping

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif",
}
ID_KEYS = ("id", "object_id")
IMAGE_KEYS = ("images", "image", "photos")
CSV_IMAGE_SEPARATOR = ";"


@dataclass
class ManifestRow:
    """One object row; `problem` is set (and record None) when the row itself is unusable."""

    line: int
    record: ObjectRecord | None
    images: list[str]
    problem: str | None = None


def _row_from_mapping(line: int, data: dict[str, Any]) -> ManifestRow:
    raw_images: Any = next((data[k] for k in IMAGE_KEYS if data.get(k) not in (None, "")), [])
    if isinstance(raw_images, str):
        images = [p.strip() for p in raw_images.split(CSV_IMAGE_SEPARATOR) if p.strip()]
    elif isinstance(raw_images, list) and all(isinstance(p, str) for p in raw_images):
        images = [p.strip() for p in raw_images if p.strip()]
    else:
        kind = type(raw_images).__name__ if not isinstance(raw_images, list) else "a list holding other things"
        return ManifestRow(line, None, [], f"'images' must be a string or a list of strings, not {kind}")
    try:
        # The same rules for ids and values as every other way in (index/records.py).
        record = record_from_mapping(data, ID_KEYS, IMAGE_KEYS)
    except RecordError as exc:
        return ManifestRow(line, None, images, str(exc))
    return ManifestRow(line, record, images)


def read_manifest(path: Path) -> Iterator[ManifestRow]:
    """Stream rows of a CSV (header row) or JSON Lines manifest.

    Raises:
        ManifestError: the file is missing, of an unknown kind, or has no usable header.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    else:
        raise ManifestError(f"{path}: manifest must be .csv, .tsv or .jsonl (JSON Lines)")


def _read_csv(path: Path, delimiter: str) -> Iterator[ManifestRow]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not any(k in header for k in ID_KEYS):
            raise ManifestError(f"{path}: the header row needs an 'id' column (found: {', '.join(header) or 'nothing'})")
        reader.fieldnames = header
        try:
            for row in reader:
                row.pop(None, None)  # cells beyond the header
                yield _row_from_mapping(reader.line_num, row)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}, line {reader.line_num}: {exc}") from exc


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Stream a JSON Lines file: (line number, object, None) or (line number, None, problem)."""
    with path.open(encoding="utf-8-sig") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield n, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(data, dict):
                yield n, None, "each line must be a JSON object"
                continue
            yield n, data, None


def _read_jsonl(path: Path) -> Iterator[ManifestRow]:
    for n, data, problem in json_lines(path):
        yield _row_from_mapping(n, data) if data is not None else ManifestRow(n, None, [], problem)


def resolve_images(refs: list[str], root: Path) -> Iterator[tuple[str, Path | None, str | None]]:
    """Expand folders and check containment: yields (reference, path, problem)."""
    root = root.resolve()
    for ref in refs:
        candidate = (root / ref).resolve()
        if not candidate.is_relative_to(root):
            yield ref, None, f"path is outside the images root {root}: refused"
            continue
        if candidate.is_dir():
            files = sorted(p for p in candidate.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                yield ref, None, "folder holds no image files"
            for p in files:
                if p.resolve().is_relative_to(root):
                    yield str(p.relative_to(root)), p.resolve(), None
                else:
                    yield str(p.relative_to(root)), None, "links outside the images root: refused"
            continue
        if not candidate.exists():
            yield ref, None, "file not found"
            continue
        yield ref, candidate, None
