"""`artefact objects show | list | find | set-status | remove`: read, find and change catalogue records."""

from __future__ import annotations

import argparse

from artefact.api.cli.common import EXIT_OK, open_library, parse_filters, print_json, record_lines
from artefact.api.settings import Settings
from artefact.index.catalogue import SearchFilters
from artefact.index.records import ImageRecord, ObjectRecord

HISTORY_SHOWN = 20


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with open_library(settings) as library:
        record = library.catalogue.get_object(args.object_id)
        images = library.catalogue.object_images(args.object_id)
        history = library.catalogue.history(args.object_id, limit=HISTORY_SHOWN)
    if args.json:
        print_json({**record.to_dict(), "images": [i.to_dict() for i in images], "history": history})
    else:
        print(format_object(record, images))
    return EXIT_OK


def format_object(record: ObjectRecord, images: list[ImageRecord]) -> str:
    # The fields as one block: a record with none still prints its (empty) line.
    lines = [f"{record.object_id}  [{record.status}]", "\n".join(record_lines(record.to_dict(), "  ")),
             f"  photos ({len(images)}):"]
    lines += [f"    #{i.image_id} {i.path} ({i.width}x{i.height}, sha256 {i.sha256[:12]})" for i in images]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    filters = parse_filters(args.filter, args.include_recovered) if args.filter else SearchFilters(include_recovered=True)
    with open_library(settings) as library:
        records = library.catalogue.list_objects(filters, limit=args.limit, offset=args.offset)
    if args.json:
        print_json([r.to_dict() for r in records])
    elif records:
        print(format_object_list(records))
    return EXIT_OK


def cmd_find(args: argparse.Namespace, settings: Settings) -> int:
    """Records holding every word (accents and case ignored, each word a prefix), best first; no model is loaded."""
    filters = parse_filters(args.filter, args.include_recovered)
    with open_library(settings) as library:
        records = library.catalogue.find_objects(" ".join(args.words), filters, limit=args.limit)
    if args.json:
        print_json([r.to_dict() for r in records])
    elif records:
        print(format_object_list(records))
    return EXIT_OK


def format_object_list(records: list[ObjectRecord]) -> str:
    return "\n".join(
        f"{r.object_id:<24} {r.status:<10} {r.fields.get('object_type', ''):<16} {r.fields.get('title', '')}" for r in records
    )


def cmd_set_status(args: argparse.Namespace, settings: Settings) -> int:
    with open_library(settings) as library, library.writing():
        before = library.set_status(args.object_id, args.status)
    print(f"{args.object_id}: status {before} -> {args.status.lower()}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    with open_library(settings) as library, library.writing():
        removed = library.remove_object(args.object_id)
    print(f"{args.object_id}: removed with {removed} photo vectors")
    return EXIT_OK
