"""The `artefact` command: thin subcommands over the index and embed layers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from artefact.api.settings import Settings
from artefact.embed.errors import ArtefactError, CatalogueError
from artefact.index.catalogue import SearchFilters
from artefact.index.records import FILTER_FIELDS, RECORD_FIELDS, STATUSES

log = logging.getLogger("artefact")


# -- helpers ------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("home", "backend", "model", "pretrained", "model_config_dir", "device", "threads", "workers", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "offline", False):
        overrides["offline"] = True
    return Settings(**overrides)


def _library(settings: Settings, must_exist: bool = True) -> Any:
    from artefact.index.library import CATALOGUE_FILE, Library

    if must_exist and not (settings.home / CATALOGUE_FILE).is_file():
        raise CatalogueError(
            f"no catalogue in {settings.home}: index one first with "
            "`artefact index add MANIFEST --images ROOT` (or pass --home / set ARTEFACT_HOME)"
        )
    return Library(settings.home)


def _embedder_for(settings: Settings, library: Any) -> Any:
    """The index's own model; an explicitly named other model is refused by check_model."""
    from artefact.embed.loader import load_embedder, load_embedder_with_fallback

    explicit = settings.explicit_spec()
    existing = library.model
    if explicit is None and existing is not None:
        embedder = load_embedder(existing.spec(), settings.load_options())
    else:
        embedder = load_embedder_with_fallback(explicit, settings.load_options())
    library.check_model(embedder.description)
    return embedder


def _filters(args: argparse.Namespace) -> SearchFilters:
    values: dict[str, list[str]] = {f: [] for f in FILTER_FIELDS}
    for item in args.filter or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in values or not value.strip():
            raise CatalogueError(
                f"bad filter {item!r}: use KEY=VALUE[,VALUE...] with KEY one of {', '.join(FILTER_FIELDS)}"
            )
        values[key] += [v.strip() for v in value.split(",") if v.strip()]
    bad = [s for s in values["status"] if s.lower() not in STATUSES]
    if bad:
        raise CatalogueError(f"unknown status {', '.join(bad)}: use one of {', '.join(STATUSES)}")
    return SearchFilters(**{k: tuple(v) for k, v in values.items()}, include_recovered=args.include_recovered)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _record_lines(record: dict[str, Any], indent: str = "   ") -> list[str]:
    lines = []
    for name in RECORD_FIELDS:
        if record.get(name):
            lines.append(f"{indent}{name.replace('_', ' ')}: {record[name]}")
    for k, v in (record.get("extra") or {}).items():
        lines.append(f"{indent}{k}: {v}")
    return lines


# -- commands -----------------------------------------------------------------
def cmd_index_add(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.index.ingest import ingest_manifest

    library = _library(settings, must_exist=False)
    embedder = _embedder_for(settings, library)
    report = ingest_manifest(
        library,
        embedder,
        Path(args.manifest),
        Path(args.images),
        workers=settings.workers,
        batch_size=settings.batch_size,
        max_pixels=settings.max_pixels,
        progress=not args.quiet and not args.json,
        local_features=None if args.local_features == "none" else args.local_features,
    )
    if args.json:
        _print_json({**report.to_dict(), "model": embedder.description.label()})
        return 0
    print(
        f"Indexed with {embedder.description.label()} into {settings.home}\n"
        f"  objects: {report.objects_created} new, {report.objects_updated} updated, "
        f"{report.objects_unchanged} unchanged\n"
        f"  photos:  {report.images_added} added, {report.images_replaced} replaced, "
        f"{report.images_unchanged} unchanged, {report.images_failed} skipped "
        f"({report.images_per_second:.1f} photos/s)"
    )
    errors = [p for p in report.problems if p.kind == "error"]
    warnings = [p for p in report.problems if p.kind == "warning"]
    for p in errors[:20]:
        print(f"  skipped {p.file or '-'} (object {p.object_id or '-'}): {p.problem}", file=sys.stderr)
    for p in warnings[:20]:
        print(f"  note: {p.file or '-'} (object {p.object_id}): {p.problem}", file=sys.stderr)
    if len(report.problems) > 40:
        print(f"  ... {len(report.problems) - 40} more", file=sys.stderr)
    if report.report_path:
        print(f"  full problem report: {report.report_path}")
    return 0


def cmd_index_stats(args: argparse.Namespace, settings: Settings) -> int:
    with _library(settings) as library:
        stats = library.stats()
    if args.json:
        _print_json(stats)
        return 0
    model = stats["model"]
    print(f"Home:     {stats['home']}")
    print(f"Objects:  {stats['objects']} ({', '.join(f'{k} {v}' for k, v in sorted(stats['by_status'].items())) or 'none'})")
    print(f"Photos:   {stats['images']} (vectors in index: {stats['vectors']})")
    if stats["objects_without_images"]:
        print(f"          {stats['objects_without_images']} objects have no photo")
    if model:
        print(f"Model:    {model['backend']}:{model['model_name']}/{model['pretrained']} (dim {model['dim']})")
    print(f"Files:    catalogue {stats['catalogue_bytes'] / 1e6:.1f} MB, index {stats['index_bytes'] / 1e6:.1f} MB")
    print(f"Local features: {stats['local_features'] or 'none'} ({stats.get('images_with_features', 0)} photos)")
    for mode, cal in stats["calibration"].items():
        if cal:
            print(f"Verdicts ({mode.replace('_', ' ')}): strong at p >= {cal['strong']:.3f} "
                  f"(precision {cal['precision'].get('strong', 0):.3f}), possible at p >= {cal['possible']:.3f} "
                  f"(precision {cal['precision'].get('possible', 0):.3f}), fitted {cal['fitted_at'] or 'built in'}")
        else:
            print(f"Verdicts ({mode.replace('_', ' ')}): uncalibrated (similarity threshold; run `artefact index calibrate`)")
    return 0


def cmd_index_check(args: argparse.Namespace, settings: Settings) -> int:
    with _library(settings) as library:
        problems = library.check()
        stats = library.stats()
    if args.json:
        _print_json({"ok": not problems, "problems": problems, "images": stats["images"], "vectors": stats["vectors"]})
    elif problems:
        for p in problems:
            print(f"PROBLEM: {p}")
    else:
        print(f"OK: {stats['objects']} objects, {stats['images']} photos, {stats['vectors']} vectors, consistent")
    return 1 if problems else 0


def cmd_index_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.index.bench.calibration_samples import collect_samples
    from artefact.index.bench.queries import read_queries
    from artefact.index.calibration import fit

    queries = read_queries(Path(args.queries))
    with _library(settings) as library:
        embedder = _embedder_for(settings, library)
        samples, groups = collect_samples(library, embedder, queries, depth=args.depth,
                                          rerank=0 if not library.local_features else args.rerank)
        fitted = []
        for uses_inliers in ([True, False] if library.local_features else [False]):
            cal = fit(samples, uses_inliers=uses_inliers, groups=groups)
            with library.writing():
                library.set_calibration(cal)
            fitted.append(cal)
    if args.json:
        _print_json([c.__dict__ for c in fitted])
        return 0
    print(f"Calibrated on {len(queries)} queries ({len(samples)} candidate pairs, {sum(s[2] for s in samples)} true)")
    for c in fitted:
        mode = "with geometric verification" if c.uses_inliers else "similarity only"
        print(f"  {mode}: strong match at p >= {c.strong:.3f} (held-out precision {c.precision['strong']:.3f}, "
              f"recall {c.recall['strong']:.3f}); possible match at p >= {c.possible:.3f} "
              f"(precision {c.precision['possible']:.3f}, recall {c.recall['possible']:.3f})")
    return 0


def cmd_objects_show(args: argparse.Namespace, settings: Settings) -> int:
    with _library(settings) as library:
        record = library.catalogue.get_object(args.object_id)
        images = library.catalogue.object_images(args.object_id)
        history = library.catalogue.history(args.object_id, limit=20)
    data = {**record.to_dict(), "images": [i.to_dict() for i in images], "history": history}
    if args.json:
        _print_json(data)
        return 0
    print(f"{record.object_id}  [{record.status}]")
    print("\n".join(_record_lines(record.to_dict(), "  ")))
    print(f"  photos ({len(images)}):")
    for i in images:
        print(f"    #{i.image_id} {i.path} ({i.width}x{i.height}, sha256 {i.sha256[:12]})")
    return 0


def cmd_objects_list(args: argparse.Namespace, settings: Settings) -> int:
    filters = _filters(args) if args.filter else SearchFilters(include_recovered=True)
    with _library(settings) as library:
        records = library.catalogue.list_objects(filters, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json([r.to_dict() for r in records])
        return 0
    for r in records:
        print(f"{r.object_id:<24} {r.status:<10} {r.fields.get('object_type', ''):<16} {r.fields.get('title', '')}")
    return 0


def cmd_objects_set_status(args: argparse.Namespace, settings: Settings) -> int:
    with _library(settings) as library, library.writing():
        before = library.set_status(args.object_id, args.status)
    print(f"{args.object_id}: status {before} -> {args.status.lower()}")
    return 0


def cmd_objects_remove(args: argparse.Namespace, settings: Settings) -> int:
    with _library(settings) as library, library.writing():
        removed = library.remove_object(args.object_id)
    print(f"{args.object_id}: removed with {removed} photo vectors")
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.index.search import search

    if not args.photos and not args.text:
        raise CatalogueError("give one or more photos and/or --text")
    filters = _filters(args)
    with _library(settings) as library:
        if library.model is None:
            raise CatalogueError(f"the catalogue in {settings.home} is empty: index objects first")
        embedder = _embedder_for(settings, library)
        threshold = args.min_score if args.min_score is not None else settings.match_threshold
        result = search(
            library,
            embedder,
            [Path(p) for p in args.photos],
            [args.text] if args.text else [],
            k=args.k,
            filters=filters,
            threshold=threshold,
            rerank=0 if args.no_rerank else args.rerank,
            max_pixels=settings.max_pixels,
        )
    if args.json:
        _print_json({"query": {"photos": args.photos, "text": args.text}, **result.to_dict()})
        return 0
    what = ", ".join(args.photos) + (f' + text "{args.text}"' if args.text else "")
    print(f"Query: {what}")
    if result.no_match:
        print("NO CLOSE MATCH in the catalogue. Nearest objects, for reference:")
    else:
        print(f"{result.verdict.upper()}: {len(result.close_matches)} object(s) to check")
    print(f"({result.decision_rule()})")
    for n, m in enumerate(result.matches, start=1):
        rec = m.record.to_dict()
        flag = {"strong match": "STRONG  ", "possible match": "POSSIBLE"}.get(m.verdict, "        ")
        extra = "" if m.inliers is None else f" {m.inliers:>3} verified"
        prob = "" if m.probability is None else f" p={m.probability:.2f}"
        print(f"{n:>2}. {flag} {m.score:.3f}{extra}{prob}  {m.record.object_id}  [{m.record.status}]  {rec.get('title') or rec.get('object_type') or ''}")
        if m.close:
            print("\n".join(_record_lines({k: rec.get(k) for k in ('object_type', 'materials', 'date_period', 'country', 'source', 'case_reference', 'contact')}, "       ")))
            for h in m.hits:
                print(f"       {h.kind} {h.query + 1} ~ catalogue photo {h.image.path} ({h.score:.3f})")
    t = result.timings_ms
    print("(" + ", ".join(f"{v:.0f} ms {k}" for k, v in t.items()) + ")")
    return 0


def cmd_model_info(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.index.library import CATALOGUE_FILE, Library

    index_model = None
    if (settings.home / CATALOGUE_FILE).is_file():
        with Library(settings.home) as library:
            index_model = library.model
    if index_model is not None and settings.explicit_spec() is None:
        from artefact.embed.loader import load_embedder

        embedder = load_embedder(index_model.spec(), settings.load_options())
    else:
        from artefact.embed.loader import load_embedder_with_fallback

        embedder = load_embedder_with_fallback(settings.explicit_spec(), settings.load_options())
    d = embedder.description.to_dict()
    data = {"loaded": d, "device": embedder.device, "index_model": index_model.to_dict() if index_model else None,
            "matches_index": index_model is None or index_model.identity() == embedder.description.identity()}
    if args.json:
        _print_json(data)
        return 0
    print(f"Model:       {embedder.description.label()} on {embedder.device}")
    print(f"Dimension:   {d['dim']}   text search: {'yes' if d['has_text'] else 'no'}")
    print(f"Preprocess:  {json.dumps(d['preprocess'])}")
    print(f"Weights:     sha256 {d['weights_sha256']}")
    if index_model:
        print(f"Index model: {index_model.label()} ({'same' if data['matches_index'] else 'DIFFERENT'})")
    return 0


def cmd_model_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.embed.loader import load_embedder

    spec = settings.explicit_spec() or Settings(backend="open_clip").explicit_spec()
    assert spec is not None
    embedder = load_embedder(spec, settings.load_options())
    print(f"{embedder.description.label()} is in {settings.home / 'models'} (sha256 {embedder.description.weights_sha256})")
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from artefact.api.http.allocator import tune_for_service
    from artefact.api.http.app import create_app
    from artefact.api.http.security import KeyStore

    host = args.host or settings.host
    port = args.port or settings.port
    settings.home.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(settings.home / "access.sqlite")
    n_keys = keys.active_count()
    keys.close()
    if n_keys == 0 and not _is_loopback(host) and not (args.insecure or settings.insecure):
        raise CatalogueError(
            f"refusing to listen on {host} with no API keys: anyone on the network could search and edit. "
            "Create keys first (`artefact keys create --role officer --name NAME`), or pass --insecure."
        )
    if n_keys == 0:
        log.warning("no API keys configured: the service is open to anyone who can reach %s:%s", host, port)
    applied = tune_for_service()  # before uvicorn starts its threads, so they obey it
    log.debug("malloc settings applied: %s", applied)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning" if args.quiet else "info")
    return 0


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.api.http.security import KeyStore

    settings.home.mkdir(parents=True, exist_ok=True)
    store = KeyStore(settings.home / "access.sqlite")
    token = store.create(args.name, args.role)
    store.close()
    if args.json:
        _print_json({"name": args.name, "role": args.role, "key": token})
    else:
        print(f"API key for {args.name} ({args.role}); shown once, store it safely:\n{token}")
    return 0


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.api.http.security import KeyStore

    store = KeyStore(settings.home / "access.sqlite")
    keys = store.list()
    store.close()
    if args.json:
        _print_json([k.__dict__ for k in keys])
        return 0
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else f"active, last used {k.last_used_at or 'never'}"
        print(f"{k.name:<24} {k.role:<8} created {k.created_at}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from artefact.api.http.security import KeyStore

    store = KeyStore(settings.home / "access.sqlite")
    store.revoke(args.name)
    store.close()
    print(f"key {args.name} revoked")
    return 0


# -- parser -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand is not reset by the subparser's default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = common.add_argument_group("installation and model")
    g.add_argument("--home", type=Path, help="data folder (catalogue, index, model cache, reports); env ARTEFACT_HOME")
    g.add_argument("--backend", choices=["open_clip", "efficientnet_lite0"], help="model family (default: open_clip, offline fallback efficientnet_lite0)")
    g.add_argument("--model", help="open_clip model name (e.g. ViT-B-32) or local-dir:/path/to/model_folder")
    g.add_argument("--pretrained", help="open_clip pretrained tag, checkpoint file, or 'none' for random weights")
    g.add_argument("--model-config-dir", type=Path, help="folder of extra open_clip model config JSON files")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, help="CPU threads for inference")
    g.add_argument("--offline", action="store_true", help="never try to download weights")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(
        argument_default=None,
        prog="artefact", description="Search catalogues of stolen and looted cultural objects by photo.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = sub.add_parser("index", help="build and inspect the index").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = index.add_parser("add", parents=[common], help="bulk-index a manifest (CSV or JSON Lines) of objects and photos")
    p.add_argument("manifest", help="manifest file; format in data/README.md")
    p.add_argument("--images", required=True, help="folder the manifest's image paths are relative to")
    p.add_argument("--workers", type=int, help="decoding processes (default: cores - 1)")
    p.add_argument("--batch-size", type=int, help="photos per model batch")
    p.add_argument("--local-features", choices=["sift", "orb", "none"], default="sift",
                   help="local features stored for geometric verification (a new index only; default sift; "
                        "none ingests faster but disables the second look)")
    p.set_defaults(func=cmd_index_add)
    index.add_parser("stats", parents=[common], help="counts, model and file sizes").set_defaults(func=cmd_index_stats)
    index.add_parser("check", parents=[common], help="verify catalogue and index agree").set_defaults(func=cmd_index_check)
    p = index.add_parser("calibrate", parents=[common], help="fit match verdicts on labelled queries (true objects + distractors)")
    p.add_argument("queries", help="query list (CSV/JSON Lines: query, expected_id; empty id = distractor)")
    p.add_argument("--depth", type=int, default=10, help="candidates per query used as samples")
    p.add_argument("--rerank", type=int, default=20, help="candidates given geometric verification")
    p.set_defaults(func=cmd_index_calibrate)

    objects = sub.add_parser("objects", help="show, list, change and retire records").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = objects.add_parser("show", parents=[common], help="one record with its photos and history")
    p.add_argument("object_id")
    p.set_defaults(func=cmd_objects_show)
    p = objects.add_parser("list", parents=[common], help="list records (all statuses unless filtered)")
    p.add_argument("--filter", action="append", help="KEY=VALUE[,VALUE]; KEY: " + ", ".join(FILTER_FIELDS))
    p.add_argument("--include-recovered", action="store_true", default=True, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(func=cmd_objects_list)
    p = objects.add_parser("set-status", parents=[common], help="change status (recovered objects leave searches)")
    p.add_argument("object_id")
    p.add_argument("status", choices=STATUSES)
    p.set_defaults(func=cmd_objects_set_status)
    p = objects.add_parser("remove", parents=[common], help="delete a record, its photos and vectors")
    p.add_argument("object_id")
    p.set_defaults(func=cmd_objects_remove)

    p = sub.add_parser("search", parents=[common], help="search by one or more photos of one object (and/or text)")
    p.add_argument("photos", nargs="*", help="photo files (JPEG, PNG, HEIC, ...) of the same object")
    p.add_argument("--text", help="text description (CLIP models only)")
    p.add_argument("-k", type=int, default=5, help="number of objects to return (default 5)")
    p.add_argument("--filter", action="append", help="KEY=VALUE[,VALUE]; KEY: " + ", ".join(FILTER_FIELDS))
    p.add_argument("--include-recovered", action="store_true", help="also return recovered objects")
    p.add_argument("--min-score", type=float, help="similarity cut-off for a match (overrides calibrated verdicts)")
    p.add_argument("--rerank", type=int, default=20, help="top candidates given geometric verification (default 20)")
    p.add_argument("--no-rerank", action="store_true", help="embedding similarity only, no geometric verification")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", parents=[common], help="run the HTTP API (and web page)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without API keys")
    p.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys with roles").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = keys.add_parser("create", parents=[common], help="create a key (printed once)")
    p.add_argument("--name", required=True, help="who or what uses the key")
    p.add_argument("--role", required=True, choices=["officer", "curator", "admin"])
    p.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", parents=[common], help="list keys (never their secrets)").set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke", parents=[common], help="revoke a key")
    p.add_argument("name")
    p.set_defaults(func=cmd_keys_revoke)

    from artefact.api.eval_command import add_eval_parser

    add_eval_parser(sub, common)

    model = sub.add_parser("model", help="model information and download").add_subparsers(dest="sub", required=True, metavar="SUB")
    model.add_parser("info", parents=[common], help="the model this installation uses").set_defaults(func=cmd_model_info)
    model.add_parser("fetch", parents=[common], help="download weights into the cache (connected machine)").set_defaults(func=cmd_model_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before torch/faiss load: idle OpenMP threads sleep instead of spinning. Spinning
    # threads starve the decoder processes and any other work on a small machine
    # (benchmarks/README.md: a single embed went from ~50 ms to 1-2.6 s without this).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("json", "quiet", "verbose", "offline"):
        setattr(args, flag, getattr(args, flag, False))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = _settings(args)
        return int(args.func(args, settings))
    except ArtefactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: committed work is kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
