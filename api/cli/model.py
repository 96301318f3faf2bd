"""`artefact model info | fetch`: which model this installation uses, and downloading its weights."""

from __future__ import annotations

import argparse
import json
from typing import Any

from artefact.api.cli.common import EXIT_OK, print_json
from artefact.api.settings import Settings
from artefact.embed.loader import embedder_for, load_embedder
from artefact.embed.models import DEFAULT_MODEL, DEFAULT_TAG, OPEN_CLIP, ModelSpec
from artefact.index.library import Library

# What `model fetch` downloads when no model is named: the default CLIP model (never the offline fallback).
FETCH_DEFAULT = ModelSpec(OPEN_CLIP, DEFAULT_MODEL, DEFAULT_TAG)


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    index_model = None
    if settings.paths.has_catalogue():
        with Library(settings.home) as library:
            index_model = library.model
    embedder = embedder_for(index_model, settings.explicit_spec(), settings.load_options())
    data = {"loaded": embedder.description.to_dict(), "device": embedder.device,
            "index_model": index_model.to_dict() if index_model else None,
            "matches_index": index_model is None or index_model.identity() == embedder.description.identity()}
    if args.json:
        print_json(data)
    else:
        print(format_info(data, embedder.description.label(), index_model.label() if index_model else None))
    return EXIT_OK


def format_info(data: dict[str, Any], label: str, index_label: str | None) -> str:
    d = data["loaded"]
    lines = [
        f"Model:       {label} on {data['device']}",
        f"Dimension:   {d['dim']}   text search: {'yes' if d['has_text'] else 'no'}",
        f"Preprocess:  {json.dumps(d['preprocess'])}",
        f"Weights:     sha256 {d['weights_sha256']}",
    ]
    if index_label:
        lines.append(f"Index model: {index_label} ({'same' if data['matches_index'] else 'DIFFERENT'})")
    return "\n".join(lines)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    embedder = load_embedder(settings.explicit_spec() or FETCH_DEFAULT, settings.load_options())
    print(f"{embedder.description.label()} is in {settings.paths.models} (sha256 {embedder.description.weights_sha256})")
    return EXIT_OK
