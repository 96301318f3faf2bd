"""`artefact bench-build`: checkpoint-like benchmark queries from a catalogue manifest (optionally indexed too)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artefact.api.cli.common import EXIT_OK, UsageError, library_embedder, open_library, print_json
from artefact.api.settings import Settings
from artefact.index.bench import conditions
from artefact.index.bench.builder import Benchmark, BenchmarkSpec, build_benchmark, index_benchmark


def spec_from_args(args: argparse.Namespace) -> BenchmarkSpec:
    try:
        severities = tuple(int(s) for s in args.severities.split(","))
    except ValueError as exc:
        raise UsageError(f"--severities {args.severities!r}: give numbers 1 to 3 separated by commas") from exc
    return BenchmarkSpec(
        conditions=tuple(args.conditions.split(",")) if args.conditions else tuple(conditions.CONDITIONS),
        severities=severities,
        objects_per_condition=args.objects,
        seed=args.seed,
        distractor_dir=Path(args.distractors) if args.distractors else None,
        skimage_distractors=not args.no_skimage_distractors,
        pairs_dir=Path(args.pairs) if args.pairs else None,
        use_pairs=not args.no_pairs,
    )


def cmd_bench_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build a benchmark folder; with --index, also index the catalogue + pair objects into --home."""
    spec = spec_from_args(args)
    try:
        bench = build_benchmark(Path(args.out), Path(args.manifest), Path(args.images), spec)
    except ValueError as exc:  # an unknown condition or severity, no usable photo, a missing pairs folder
        raise UsageError(str(exc)) from exc
    if args.index:
        with open_library(settings, must_exist=False) as library:
            embedder = library_embedder(settings, library)
            index_benchmark(library, embedder, Path(args.manifest), Path(args.images), bench,
                            workers=settings.workers, progress=not args.quiet and not args.json)
    if args.json:
        print_json({"out": str(bench.root), "queries": str(bench.queries_path), **bench.counts,
                    "extra_manifests": [[str(m), str(r)] for m, r in bench.extra_manifests]})
        return EXIT_OK
    print(format_benchmark(bench))
    if not args.index:
        for m, root in bench.extra_manifests:
            print(f"  also index the pair objects: artefact index add {m} --images {root}", file=sys.stderr)
    print(f"  evaluate: artefact eval {bench.queries_path} --out REPORT_DIR")
    return EXIT_OK


def format_benchmark(bench: Benchmark) -> str:
    return (f"Benchmark in {bench.root}: {bench.counts['queries']} queries "
            f"({bench.counts['distractors']} distractors, {bench.counts['pairs']} real photo pairs)")
