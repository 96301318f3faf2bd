"""`artefact eval`: recall@k, mAP, GAP, false alarms and latency of one or several index homes on a query list."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from artefact.api.cli.common import EXIT_OK, UsageError, indexed_model, print_json
from artefact.api.settings import Settings
from artefact.embed.loader import embedder_for
from artefact.index.bench.queries import read_queries
from artefact.index.bench.report import format_table, write_report
from artefact.index.bench.runner import EvalRun, evaluate
from artefact.index.errors import CatalogueError
from artefact.index.home import Home
from artefact.index.library import Library

if TYPE_CHECKING:
    from artefact.embed.embedder import Embedder


def label_and_home(item: str) -> tuple[str, Path]:
    """`LABEL=HOME` or `HOME` (labelled by its folder name)."""
    label, sep, path = item.partition("=")
    if not sep:
        return Path(item).name or item, Path(item)
    return label, Path(path)


def parse_reranks(value: str | None) -> list[int | None]:
    """`--rerank 0,20` as [0, 20]; unset means search's own default (None)."""
    if value is None:
        return [None]
    try:
        return [int(v) for v in str(value).split(",")]
    except ValueError as exc:
        raise UsageError(f"--rerank {value!r}: give whole numbers separated by commas (e.g. 0,20)") from exc


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate one or several index homes on a query list; write report.json and PNG plots."""
    queries = read_queries(Path(args.queries))
    if args.limit:
        queries = queries[: args.limit]
    configs = [label_and_home(c) for c in (args.compare or [])] or [(Path(settings.home).name or "home", settings.home)]
    reranks = parse_reranks(args.rerank)
    runs: list[EvalRun] = []
    for label, home in configs:
        library, embedder = _open_home(home, settings)
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
        print_json({"out": str(args.out), "comparison": report["comparison"], "files": report["files"]})
        return EXIT_OK
    print("\n".join(format_comparison_row(row) for row in report["comparison"]))
    print(format_table(report, "by_condition"))
    print(f"report and plots in {args.out}: {', '.join(report['files'])}")
    return EXIT_OK


def _open_home(home: Path, settings: Settings) -> tuple[Library, "Embedder"]:
    """A library and its own model: every home compared keeps the model that built it."""
    if not Home(home).has_catalogue():
        raise CatalogueError(f"no catalogue in {home}: index one first with `artefact --home {home} index add ...`")
    library = Library(home)
    try:
        # Weights come from the user's model cache (settings.home), whichever home is evaluated.
        embedder = embedder_for(indexed_model(library), None, settings.load_options())
        library.check_model(embedder.description)
    except BaseException:
        library.close()
        raise
    return library, embedder


def format_comparison_row(row: Mapping[str, Any]) -> str:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    return (f"{row['label']} ({row['model']}): ranking in the service's order: R@1 {f(row['recall@1'])}  "
            f"R@5 {f(row['recall@5'])}  R@10 {f(row['recall@10'])}  mAP {f(row['mAP'])}\n"
            f"  calibrated verdicts: GAP {f(row['GAP'])}  strong recall {f(row['strong_recall'])} "
            f"precision {f(row['strong_precision'])}  close recall {f(row['close_recall'])} "
            f"precision {f(row['close_precision'])}  false alarms strong {f(row['false_alarm_strong'])} "
            f"close {f(row['false_alarm_close'])}\n"
            f"  latency p50 {f(row['latency_p50_ms'])} ms  p95 {f(row['latency_p95_ms'])} ms")
