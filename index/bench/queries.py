"""Query lists: one labelled evaluation query per row (photos, true object or none), read and written as CSV / JSON Lines."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from artefact.embed.fileio import atomic_path
from artefact.index.errors import ManifestError
from artefact.index.manifest import json_lines

EXPECTED = "expected_id"


@dataclass
class Query:
    """One evaluation query: photo(s) of one object and the object it truly is (None = distractor)."""

    photos: list[Path]
    expected_id: str | None
    condition: str = ""
    severity: int = 0
    line: int = 0

    @property
    def is_distractor(self) -> bool:
        return self.expected_id is None


def _query_from(line: int, data: Mapping[str, Any], folder: Path) -> Query:
    raw = data.get("query") or data.get("photos") or data.get("photo")
    if isinstance(raw, str):
        refs = [p.strip() for p in raw.split(";") if p.strip()]
    elif isinstance(raw, list):
        refs = [str(p).strip() for p in raw if str(p).strip()]
    else:
        refs = []
    if not refs:
        raise ManifestError(f"query list line {line}: no query photo (column `query`)")
    if EXPECTED not in data:
        # Without it every query would silently count as a distractor and recall read as null.
        raise ManifestError(f"query list line {line}: no `{EXPECTED}` key (the true object's id; "
                            "empty or null for a distractor)")
    expected = str(data.get(EXPECTED) or "").strip() or None
    sev_raw = str(data.get("severity") or "").strip()
    try:
        severity = int(sev_raw) if sev_raw else 0
    except ValueError as exc:
        raise ManifestError(f"query list line {line}: severity {sev_raw!r} is not an integer") from exc
    return Query(
        photos=[(folder / r) for r in refs],
        expected_id=expected,
        condition=str(data.get("condition") or "").strip(),
        severity=severity,
        line=line,
    )


def read_queries(path: Path) -> list[Query]:
    """Read a query list (CSV or JSON Lines); photo paths are relative to the list's folder.

    Columns / keys: `query` (one path, or several separated by `;`; a JSON list in
    JSONL), `expected_id` (required; empty or null = distractor), optional
    `condition`, `severity`.

    Raises:
        ManifestError: missing file, unknown format or an unusable line.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"query list {path} not found")
    folder = path.parent
    out: list[Query] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, data, problem in json_lines(path):
            if data is None:
                raise ManifestError(f"query list line {n}: {problem}")
            out.append(_query_from(n, data, folder))
    elif path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not reader.fieldnames or "query" not in reader.fieldnames:
                raise ManifestError(f"{path}: the header needs a `query` column")
            if EXPECTED not in reader.fieldnames:
                raise ManifestError(f"{path}: the header needs an `{EXPECTED}` column (the true object's id; "
                                    "leave it empty for a distractor)")
            for n, row in enumerate(reader, start=2):
                out.append(_query_from(n, row, folder))
    else:
        raise ManifestError(f"{path}: query lists are .csv or .jsonl")
    return out


def write_queries(path: Path, queries: Iterable[Query]) -> None:
    """Write a query list CSV, photo paths relative to its folder (atomic)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "expected_id", "condition", "severity"])
        for q in queries:
            refs = ";".join(str(Path(p).relative_to(path.parent)) if Path(p).is_absolute() else str(p) for p in q.photos)
            w.writerow([refs, q.expected_id or "", q.condition, q.severity or ""])


def check_expected_ids(queries: Iterable[Query], known_ids: Iterable[str]) -> None:
    """Refuse a query list whose true objects are not in the catalogue (they could never be found).

    Raises:
        ManifestError: naming the unknown ids (the first ten) and how many there are.
    """
    known = set(known_ids)
    unknown = sorted({q.expected_id for q in queries if q.expected_id is not None and q.expected_id not in known})
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise ManifestError(f"{len(unknown)} expected id(s) are not in the catalogue: {shown} "
                            "(index those objects, or fix the query list)")
