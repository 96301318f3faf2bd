"""`artefact model info | fetch | export`: which model this installation uses, downloading its weights, making its fast runtime."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from artefact.api.cli.common import EXIT_OK, print_json
from artefact.api.settings import Settings
from artefact.embed.loader import embedder_for, load_embedder
from artefact.embed.models import DEFAULT_MODEL, DEFAULT_TAG, OPEN_CLIP, ModelSpec
from artefact.embed.runtimes.export import export_folder
from artefact.embed.runtimes.variants import record_of
from artefact.index.library import Library

# What `model fetch` downloads when no model is named: the default CLIP model (never the offline fallback).
FETCH_DEFAULT = ModelSpec(OPEN_CLIP, DEFAULT_MODEL, DEFAULT_TAG)


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    index_model = None
    if settings.paths.has_catalogue():
        with Library(settings.home) as library:
            index_model = library.model
    embedder = embedder_for(index_model, settings.explicit_spec(index_model), settings.load_options())
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
    runtime = (d.get("extra") or {}).get("runtime")
    if runtime:
        lines.append(f"Runtime:     {runtime['name']}/{runtime['precision']} (file sha256 {str(runtime['sha256'])[:16]}, "
                     f"agreement with PyTorch fp32: cosine {runtime['agreement_min_cosine']})")
    else:
        lines.append("Runtime:     torch/fp32")
    if index_label:
        lines.append(f"Index model: {index_label} ({'same' if data['matches_index'] else 'DIFFERENT'})")
    return "\n".join(lines)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    embedder = load_embedder(settings.explicit_spec() or FETCH_DEFAULT, settings.load_options())
    print(f"{embedder.description.label()} is in {settings.paths.models} (sha256 {embedder.description.weights_sha256})")
    return EXIT_OK


def calibration_photos(library: Library, n: int) -> tuple[Path, ...]:
    """Up to n catalogue photos spread over the whole catalogue (static int8 calibrates on them)."""
    files = [f for _, f in sorted(library.catalogue.image_files().items())]
    step = max(1, len(files) // max(1, n))
    return tuple(Path(f) for f in files[::step][:n])


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Make (or confirm) the runtime variant now, so the first search does not wait for it."""
    index_model = None
    photos: tuple[Path, ...] = ()
    if settings.paths.has_catalogue():
        with Library(settings.home) as library:
            index_model = library.model
            photos = calibration_photos(library, args.calibration_photos)
    options = replace(settings.load_options(), calibration_photos=photos)
    embedder = embedder_for(index_model, settings.explicit_spec(index_model), options)
    record = record_of(embedder.description)
    data = {"model": embedder.description.label(), "runtime": record.to_dict(),
            "folder": str(export_folder(options, embedder.description)) if record.sha256 else None,
            "catalogue_photos_for_calibration": len(photos)}
    if args.json:
        print_json(data)
    elif record.sha256 is None:
        print(f"{data['model']} runs in PyTorch fp32: nothing to export (see --runtime, --precision)")
    else:
        print(f"{data['model']} in {record.variant.label()}: {data['folder']}\n"
              f"  file sha256 {record.sha256}\n  agreement with PyTorch fp32: cosine {record.agreement:.5f} (lowest over the probe photos)")
    return EXIT_OK
