"""What every command shares: settings from the flags, the library and its model, usage errors, exit codes, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from artefact.api.settings import Settings
from artefact.embed.errors import ArtefactError
from artefact.embed.loader import embedder_for
from artefact.index.catalogue import SearchFilters
from artefact.index.errors import CatalogueError
from artefact.index.library import Library
from artefact.index.records import FILTER_FIELDS, RECORD_FIELDS
from artefact.index.stores.choice import settle as settle_store

if TYPE_CHECKING:
    from artefact.embed.embedder import Embedder
    from artefact.embed.models import ModelDescription

Command = Callable[[argparse.Namespace, Settings], int]

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
# Flags that override a Settings field of the same name when given.
SETTING_FLAGS = ("home", "backend", "model", "pretrained", "model_config_dir", "device", "threads", "workers", "batch_size",
                 "runtime", "precision", "vector_store")
# Flags of the common parent parser that a command may read although no subparser set them.
SWITCHES = ("json", "quiet", "verbose", "offline")


class UsageError(ArtefactError):
    """The command line asks for something impossible (no input, a bad flag value); exit status 1."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """ARTEFACT_* environment settings, overridden by the flags given."""
    overrides: dict[str, Any] = {}
    for name in SETTING_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "offline", False):
        overrides["offline"] = True
    return Settings(**overrides)


def open_library(settings: Settings, must_exist: bool = True) -> Library:
    """The home's library; with `must_exist`, a home without a catalogue is refused with what to do."""
    if must_exist and not settings.paths.has_catalogue():
        raise CatalogueError(
            f"no catalogue in {settings.home}: index one first with "
            "`artefact index add MANIFEST --images ROOT` (or pass --home / set ARTEFACT_HOME)"
        )
    settle_store(settings.paths, settings.vector_store)  # a new home records the store; another one is refused
    return Library(settings.home, store_options=settings.store_options())


def indexed_model(library: Library) -> "ModelDescription":
    """The model that built the library's index; an empty catalogue has none and is refused."""
    model = library.model
    if model is None:
        raise CatalogueError(f"the catalogue in {library.home} is empty: index objects first")
    return model


def library_embedder(settings: Settings, library: Library, bulk: bool = False) -> "Embedder":
    """The index's own model unless another is named; a named model that differs is refused.

    bulk: the embedder feeds an ingest whose decode workers share the cores.
    """
    options = replace(settings.load_options(), bulk=bulk)
    embedder = embedder_for(library.model, settings.explicit_spec(library.model), options)
    library.check_model(embedder.description)
    return embedder


def parse_filters(items: Sequence[str] | None, include_recovered: bool) -> SearchFilters:
    """`--filter KEY=VALUE[,VALUE...]` flags (repeatable) as search filters; values are read by SearchFilters.parse."""
    values: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in FILTER_FIELDS or not value.strip():
            raise UsageError(
                f"bad filter {item!r}: use KEY=VALUE[,VALUE...] with KEY one of {', '.join(FILTER_FIELDS)}"
            )
        values.setdefault(key, []).append(value)
    return SearchFilters.parse(values, include_recovered=include_recovered)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def record_lines(record: Mapping[str, Any], indent: str = "   ") -> list[str]:
    """`name: value` lines for a record's filled fields (and its extra fields), in display order."""
    lines = [f"{indent}{name.replace('_', ' ')}: {record[name]}" for name in RECORD_FIELDS if record.get(name)]
    lines += [f"{indent}{k}: {v}" for k, v in (record.get("extra") or {}).items()]
    return lines


def run_command(func: Command, args: argparse.Namespace) -> int:
    """Run one command; errors it raises on purpose become a message and an exit status, never a traceback."""
    try:
        return int(func(args, settings_from_args(args)))
    except ArtefactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: committed work is kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
