"""`artefact search`: one or more photos of one object (and/or a text description) against the catalogue."""

from __future__ import annotations

import argparse
from pathlib import Path

from artefact.api.cli.common import (
    EXIT_OK,
    UsageError,
    indexed_model,
    library_embedder,
    open_library,
    parse_filters,
    print_json,
    record_lines,
)
from artefact.api.settings import Settings
from artefact.index.calibration import POSSIBLE, STRONG
from artefact.index.search import ObjectMatch, SearchResult, search

# The record fields shown under a close match: what an officer needs to act on it.
CLOSE_MATCH_FIELDS = ("object_type", "materials", "date_period", "country", "source", "case_reference", "contact")
FLAGS = {STRONG: "STRONG  ", POSSIBLE: "POSSIBLE"}


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    if not args.photos and not args.text:
        raise UsageError("give one or more photos and/or --text")
    filters = parse_filters(args.filter, args.include_recovered)
    k = settings.cli_results if args.k is None else args.k
    rerank = 0 if args.no_rerank else settings.rerank if args.rerank is None else args.rerank
    with open_library(settings) as library:
        indexed_model(library)
        embedder = library_embedder(settings, library)
        result = search(
            library,
            embedder,
            [Path(p) for p in args.photos],
            [args.text] if args.text else [],
            k=k,
            filters=filters,
            threshold=args.min_score if args.min_score is not None else settings.match_threshold,
            rerank=rerank,
            max_pixels=settings.max_pixels,
        )
    if args.json:
        print_json({"query": {"photos": args.photos, "text": args.text}, **result.to_dict()})
    else:
        print(format_result(result, args.photos, args.text))
    return EXIT_OK


def format_result(result: SearchResult, photos: list[str], text: str | None) -> str:
    what = ", ".join(photos) + (f' + text "{text}"' if text else "")
    lines = [f"Query: {what}"]
    if result.no_match:
        lines.append("NO CLOSE MATCH in the catalogue. Nearest objects, for reference:")
    else:
        lines.append(f"{result.verdict.upper()}: {len(result.close_matches)} object(s) to check")
    lines.append(f"({result.decision_rule()})")
    for n, m in enumerate(result.matches, start=1):
        lines += format_match(n, m)
    lines.append("(" + ", ".join(f"{v:.0f} ms {k}" for k, v in result.timings_ms.items()) + ")")
    return "\n".join(lines)


def format_match(n: int, m: ObjectMatch) -> list[str]:
    rec = m.record.to_dict()
    flag = FLAGS.get(m.verdict, "        ")
    extra = "" if m.inliers is None else f" {m.inliers:>3} verified"
    prob = "" if m.probability is None else f" p={m.probability:.2f}"
    lines = [f"{n:>2}. {flag} {m.score:.3f}{extra}{prob}  {m.record.object_id}  [{m.record.status}]  "
             f"{rec.get('title') or rec.get('object_type') or ''}"]
    if m.close:
        # The fields as one block: a close match with none of them still prints its (empty) line.
        lines.append("\n".join(record_lines({k: rec.get(k) for k in CLOSE_MATCH_FIELDS}, "       ")))
        lines += [f"       {h.kind} {h.query + 1} ~ catalogue photo {h.image.path} ({h.score:.3f})" for h in m.hits]
    return lines
