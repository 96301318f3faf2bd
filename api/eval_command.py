"""`artefact eval` and `artefact bench-build`: recall evaluation from the command line (thin wrappers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from artefact.api.settings import Settings
from artefact.embed.errors import CatalogueError


def _label_and_home(item: str) -> tuple[str, Path]:
    label, sep, path = item.partition("=")
    if not sep:
        return Path(item).name or item, Path(item)
    return label, Path(path)


def _open(home: Path, settings: Settings) -> tuple[Any, Any]:
    """A library and its own model (every home compared keeps the model that built it)."""
    from artefact.embed.loader import load_embedder
    from artefact.index.library import CATALOGUE_FILE, Library

    if not (home / CATALOGUE_FILE).is_file():
        raise CatalogueError(f"no catalogue in {home}: index one first with `artefact --home {home} index add ...`")
    library = Library(home)
    model = library.model
    if model is None:
        library.close()
        raise CatalogueError(f"the catalogue in {home} is empty: index objects first")
    # Weights come from the user's model cache (settings.home), whichever home is evaluated.
    embedder = load_embedder(model.spec(), settings.load_options())
    library.check_model(embedder.description)
    return library, embedder


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate one or several index homes on a query list; write report.json and PNG plots."""
    from artefact.index.bench.queries import read_queries
    from artefact.index.bench.report import format_table, write_report
    from artefact.index.bench.runner import evaluate

    queries = read_queries(Path(args.queries))
    if args.limit:
        queries = queries[: args.limit]
    configs = [_label_and_home(c) for c in (args.compare or [])] or [(Path(settings.home).name or "home", settings.home)]
    reranks: list[int | None] = [int(v) for v in str(args.rerank).split(",")] if args.rerank is not None else [None]
    runs = []
    for label, home in configs:
        library, embedder = _open(home, settings)
        try:
            for rerank in reranks:
                options = {"rerank": rerank} if rerank is not None else {}
                name = label if len(reranks) == 1 else f"{label} rerank={rerank}"
                runs.append(evaluate(library, embedder, queries, label=name, k=args.k, batch_size=args.batch,
                                     search_options=options, progress=not args.quiet and not args.json))
        finally:
            library.close()
    report = write_report(Path(args.out), runs, plots=not args.no_plots)
    if args.json:
        print(json.dumps({"out": str(args.out), "comparison": report["comparison"], "files": report["files"]}, indent=2))
        return 0
    for row in report["comparison"]:
        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.3f}"
        print(f"{row['label']} ({row['model']}): R@1 {f(row['recall@1'])}  R@5 {f(row['recall@5'])}  "
              f"R@10 {f(row['recall@10'])}  mAP {f(row['mAP'])}  GAP {f(row['GAP'])}  "
              f"latency p50 {f(row['latency_p50_ms'])} ms")
    print(format_table(report, "by_condition"))
    print(f"report and plots in {args.out}: {', '.join(report['files'])}")
    return 0


def cmd_bench_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build a benchmark folder; with --index, also index the catalogue + pair objects into --home."""
    from artefact.index.bench import conditions
    from artefact.index.bench.builder import BenchmarkSpec, build_benchmark, index_benchmark

    spec = BenchmarkSpec(
        conditions=tuple(args.conditions.split(",")) if args.conditions else tuple(conditions.CONDITIONS),
        severities=tuple(int(s) for s in args.severities.split(",")),
        objects_per_condition=args.objects,
        seed=args.seed,
        distractor_dir=Path(args.distractors) if args.distractors else None,
        skimage_distractors=not args.no_skimage_distractors,
        pairs_dir=Path(args.pairs) if args.pairs else None,
        use_pairs=not args.no_pairs,
    )
    try:
        bench = build_benchmark(Path(args.out), Path(args.manifest), Path(args.images), spec)
    except ValueError as exc:
        raise CatalogueError(str(exc)) from exc
    if args.index:
        from artefact.api.cli import _embedder_for, _library

        library = _library(settings, must_exist=False)
        try:
            embedder = _embedder_for(settings, library)
            index_benchmark(library, embedder, Path(args.manifest), Path(args.images), bench,
                            workers=settings.workers, progress=not args.quiet and not args.json)
        finally:
            library.close()
    if args.json:
        print(json.dumps({"out": str(bench.root), "queries": str(bench.queries_path), **bench.counts,
                          "extra_manifests": [[str(m), str(r)] for m, r in bench.extra_manifests]}, indent=2))
        return 0
    print(f"Benchmark in {bench.root}: {bench.counts['queries']} queries "
          f"({bench.counts['distractors']} distractors, {bench.counts['pairs']} real photo pairs)")
    for m, root in bench.extra_manifests:
        if not args.index:
            print(f"  also index the pair objects: artefact index add {m} --images {root}", file=sys.stderr)
    print(f"  evaluate: artefact eval {bench.queries_path} --out REPORT_DIR")
    return 0


def add_eval_parser(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Register `eval` and `bench-build` on the `artefact` command's subparsers."""
    p = subparsers.add_parser("eval", parents=[common_parent],
                              help="measure recall@k, mAP, GAP, false alarms and latency on a query list")
    p.add_argument("queries", help="query list (CSV/JSONL: query, expected_id, condition, severity)")
    p.add_argument("--out", required=True, help="folder for report.json and the PNG plots")
    p.add_argument("--compare", nargs="+", metavar="[LABEL=]HOME",
                   help="evaluate several index homes (each with its own model) side by side; default: --home")
    p.add_argument("-k", type=int, default=10, help="largest cut-off for recall@k (default 10)")
    p.add_argument("--batch", type=int, default=1,
                   help="queries per model batch (1 = true per-query latency; more = faster evaluation)")
    p.add_argument("--rerank",
                   help="candidates search() re-ranks geometrically (0 = off; default: search's own); "
                        "several values (e.g. 0,20) are compared side by side; batch 1 only")
    p.add_argument("--limit", type=int, help="only the first N queries (smoke runs)")
    p.add_argument("--no-plots", action="store_true", help="report.json only")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("bench-build", parents=[common_parent],
                              help="build checkpoint-like benchmark queries from a catalogue manifest")
    p.add_argument("manifest", help="catalogue manifest (CSV/JSONL), as for `index add`")
    p.add_argument("--images", required=True, help="folder the manifest's image paths are relative to")
    p.add_argument("--out", required=True, help="benchmark folder to write")
    p.add_argument("--conditions", help="comma-separated subset (default: all; see artefact.index.conditions)")
    p.add_argument("--severities", default="1,2,3", help="comma-separated, 1 (mild) to 3 (harsh)")
    p.add_argument("--objects", type=int, help="objects per condition and severity (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distractors", help="folder of photos of objects NOT in the catalogue")
    p.add_argument("--no-skimage-distractors", action="store_true", help="do not add scikit-image's photos as distractors")
    p.add_argument("--pairs", help="folder with OpenCV sample pairs (default: /usr/share/doc/opencv-doc/examples/data if present)")
    p.add_argument("--no-pairs", action="store_true", help="no real second-photo pairs")
    p.add_argument("--index", action="store_true", help="also index the catalogue and pair objects into --home")
    p.set_defaults(func=cmd_bench_build)
