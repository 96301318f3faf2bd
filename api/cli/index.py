"""`artefact index add | stats | check | calibrate | optimize`: build, inspect, calibrate and tune the index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from artefact.api.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    library_embedder,
    open_library,
    print_json,
)
from artefact.api.http.files import sweep_home
from artefact.api.http.files import sweep_home
from artefact.api.settings import Settings
from artefact.embed.models import ModelDescription
from artefact.index.bench.calibration_samples import collect_samples
from artefact.index.bench.queries import read_queries
from artefact.index.bundle.freshness import freshness
from artefact.index.calibration import Calibration, fit
from artefact.index.ingest import IngestReport, ingest_manifest
from artefact.index.library import Library

PROBLEMS_SHOWN = 20  # per kind (errors, warnings); the full list is in the problem report file


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    library = open_library(settings, must_exist=False)
    embedder = library_embedder(settings, library, bulk=True)
    local_features = None if args.local_features == "none" else args.local_features
    progress = not args.quiet and not args.json
    if getattr(args, "ray", None):
        report = ingest_with_ray(args, settings, library, embedder.description, local_features, progress)
    else:
        report = ingest_manifest(
            library,
            embedder,
            Path(args.manifest),
            args.images,  # a folder, or an object-store URI (s3://, gs://, file://)
            workers=settings.workers,
            batch_size=settings.batch_size,
            max_pixels=settings.max_pixels,
            progress=progress,
            local_features=local_features,
        )
    if args.json:
        print_json({**report.to_dict(), "model": embedder.description.label()})
        return EXIT_OK
    print(format_ingest(report, embedder.description.label(), settings.home))
    for line in format_ingest_problems(report):
        print(line, file=sys.stderr)
    if report.report_path:
        print(f"  full problem report: {report.report_path}")
    return EXIT_OK


def ingest_with_ray(args: argparse.Namespace, settings: Settings, library: Library, model: ModelDescription,
                    local_features: str | None, progress: bool) -> IngestReport:
    """`index add --ray local|ADDRESS`: the photo work on a Ray cluster, committed here (index/distributed_ingest.py)."""
    from artefact.index.distributed_ingest import ingest_on_ray, ray_cluster

    with ray_cluster(args.ray):
        return ingest_on_ray(
            library, model, settings.load_options(), Path(args.manifest), args.images,
            actors=args.ray_actors, ray_batch_size=args.ray_batch_size, batch_size=settings.batch_size,
            max_pixels=settings.max_pixels, progress=progress, local_features=local_features,
        )


def format_ingest(report: IngestReport, model: str, home: Path) -> str:
    return (
        f"Indexed with {model} into {home}\n"
        f"  objects: {report.objects_created} new, {report.objects_updated} updated, "
        f"{report.objects_unchanged} unchanged\n"
        f"  photos:  {report.images_added} added, {report.images_replaced} replaced, "
        f"{report.images_unchanged} unchanged, {report.images_failed} skipped "
        f"({report.images_per_second:.1f} photos/s)"
    )


def format_ingest_problems(report: IngestReport) -> list[str]:
    errors = [p for p in report.problems if p.kind == "error"]
    warnings = [p for p in report.problems if p.kind == "warning"]
    lines = [f"  skipped {p.file or '-'} (object {p.object_id or '-'}): {p.problem}" for p in errors[:PROBLEMS_SHOWN]]
    lines += [f"  note: {p.file or '-'} (object {p.object_id}): {p.problem}" for p in warnings[:PROBLEMS_SHOWN]]
    if len(report.problems) > 2 * PROBLEMS_SHOWN:
        lines.append(f"  ... {len(report.problems) - 2 * PROBLEMS_SHOWN} more")
    return lines


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    with open_library(settings) as library:
        stats = library.stats()
    fresh = freshness(stats.get("bundle"), settings.catalogue_max_age_days)
    stats["freshness"] = fresh.to_dict() if fresh else None
    if args.json:
        print_json(stats)
    else:
        print(format_stats(stats))
    return EXIT_OK


def format_stats(stats: dict[str, Any]) -> str:
    model = stats["model"]
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(stats["by_status"].items())) or "none"
    lines = [
        f"Home:     {stats['home']}",
        f"Objects:  {stats['objects']} ({by_status})",
        f"Photos:   {stats['images']} (vectors in index: {stats['vectors']})",
    ]
    if stats["objects_without_images"]:
        lines.append(f"          {stats['objects_without_images']} objects have no photo")
    if model:
        lines.append(f"Model:    {model['backend']}:{model['model_name']}/{model['pretrained']} (dim {model['dim']})")
    lines.append(f"Files:    catalogue {stats['catalogue_bytes'] / 1e6:.1f} MB, index {stats['index_bytes'] / 1e6:.1f} MB")
    lines.append(f"Local features: {stats['local_features'] or 'none'} ({stats.get('images_with_features', 0)} photos)")
    lines += format_store(stats.get("index") or {})
    for mode, cal in stats["calibration"].items():
        lines.append(format_verdicts(mode.replace("_", " "), cal))
    fresh = stats.get("freshness")
    if fresh:
        signer = f"signed by key {fresh['signed_by']}" if fresh["signed_by"] else "unsigned"
        lines.append(f"Catalogue: {fresh['summary']} ({signer}, imported {fresh['imported_at']})")
        if fresh["warning"]:
            lines.append(f"WARNING:  {fresh['warning']}")
    return "\n".join(lines)


def format_store(index: dict[str, Any]) -> list[str]:
    """The vector store: kind and parameters, measured recall, and whether optimize is due."""
    if not index:
        return []
    params = ", ".join(f"{k} {v}" for k, v in sorted((index.get("params") or {}).items()) if k != "spec")
    pinned = " (pinned)" if index.get("pinned") else ""
    lines = [f"Index:    {index.get('kind')}{pinned}{': ' + params if params else ''}"]
    build = index.get("build") or {}
    if build.get("recall_at_10") is not None:
        lines.append(f"          recall@10 vs exact {build['recall_at_10']:.3f} (target {build.get('target_recall')}, "
                     f"filtered {build.get('filtered_recall_at_10')}), trained on {build.get('trained_on')} of "
                     f"{build.get('ntotal_at_build')} vectors, {build.get('added_since', 0)} added since")
    for reason in index.get("optimize_due") or []:
        lines.append(f"          optimize due: {reason} (run `artefact index optimize`)")
    return lines


def cmd_optimize(args: argparse.Namespace, settings: Settings) -> int:
    """(Re)build the vector store and tune it; searches elsewhere keep the old one until it is ready."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if args.quiet or args.json:
            return
        bar = bars.get(stage)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[stage] = tqdm(total=total or None, desc=stage, unit="vec", dynamic_ncols=True)
        bar.update(done - bar.n)

    with open_library(settings) as library:
        try:
            report = library.optimize(kind=args.type, target_recall=args.target_recall, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
    if args.json:
        print_json(report)
        return EXIT_OK
    params = ", ".join(f"{k} {v}" for k, v in sorted((report.get("params") or {}).items()))
    print(f"Index: {report['kind']} over {report['vectors']} vectors{': ' + params if params else ''}")
    if not report.get("exact"):
        reached = "reached" if report["recall_at_10"] >= report["target_recall"] else "NOT reached"
        print(f"  recall@10 vs exact {report['recall_at_10']:.3f} on {report.get('queries')} held-out vectors "
              f"(target {report['target_recall']} {reached}); filtered {report.get('filtered_recall_at_10')}; "
              f"{report.get('search_ms')} ms per search")
    return EXIT_OK


def format_verdicts(mode: str, cal: dict[str, Any]) -> str:
    if not cal:
        return f"Verdicts ({mode}): uncalibrated (similarity threshold; run `artefact index calibrate`)"
    return (f"Verdicts ({mode}): strong at p >= {cal['strong']:.3f} "
            f"(precision {cal['precision'].get('strong', 0):.3f}), possible at p >= {cal['possible']:.3f} "
            f"(precision {cal['precision'].get('possible', 0):.3f}), fitted {cal['fitted_at'] or 'built in'}")


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Read-only unless --repair, which rebuilds the vector index from the catalogue and removes the service's
    orphaned files (uploads, thumbnails, evidence images no row refers to), under the writer lock."""
    swept: list[Path] | None = None
    with open_library(settings) as library:
        repaired = library.repair() if args.repair else None
        if args.repair:
            with library.writing():  # a create writes its photo files just before its commit
                swept = sweep_home(settings.paths, library.catalogue)
        report = library.inspect()
    problems = report["problems"]
    if args.json:
        print_json({"ok": not problems, "problems": problems, "images": report["images"], "vectors": report["vectors"],
                    **({"repaired": repaired} if repaired is not None else {}),
                    **({"orphans_removed": [str(p) for p in swept]} if swept is not None else {})})
        return EXIT_ERROR if problems else EXIT_OK
    if repaired is not None and repaired["before"]:
        print("\n".join(f"REPAIRED: {p}" for p in repaired["before"]))
        print(f"Vector index rebuilt from the catalogue: {repaired['added']} vectors added, {repaired['removed']} removed")
    if swept:
        print(f"REMOVED: {len(swept)} orphaned files no catalogue row or search refers to (uploads, thumbnails, evidence)")
    if problems:
        print("\n".join(f"PROBLEM: {p}" for p in problems))
        if repaired is None:
            print("Run `artefact index check --repair` to rebuild the vector index from the catalogue.", file=sys.stderr)
    else:
        print(f"OK: {report['objects']} objects, {report['images']} photos, {report['vectors']} vectors, consistent")
    return EXIT_ERROR if problems else EXIT_OK


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    queries = read_queries(Path(args.queries))
    rerank = settings.rerank if args.rerank is None else args.rerank
    with open_library(settings) as library:
        embedder = library_embedder(settings, library)
        samples, groups = collect_samples(library, embedder, queries, depth=args.depth,
                                          rerank=rerank if library.local_features else 0)
        fitted = []
        for uses_inliers in ([True, False] if library.local_features else [False]):
            cal = fit(samples, uses_inliers=uses_inliers, groups=groups)
            with library.writing():
                library.set_calibration(cal)
            fitted.append(cal)
    if args.json:
        print_json([c.__dict__ for c in fitted])
        return EXIT_OK
    print(f"Calibrated on {len(queries)} queries ({len(samples)} candidate pairs, {sum(s[2] for s in samples)} true)")
    print("\n".join(format_calibration(c) for c in fitted))
    return EXIT_OK


def format_calibration(c: Calibration) -> str:
    mode = "with geometric verification" if c.uses_inliers else "similarity only"
    lead = f"; reads the lead over the runner-up (weight {c.margin_weight:g})" if c.margin_weight else ""
    return (f"  {mode}: strong match at p >= {c.strong:.3f} (held-out precision {c.precision['strong']:.3f}, "
            f"recall {c.recall['strong']:.3f}); possible match at p >= {c.possible:.3f} "
            f"(precision {c.precision['possible']:.3f}, recall {c.recall['possible']:.3f}){lead}")
