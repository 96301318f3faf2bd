"""The `artefact` command's wiring: flags and subcommands mapped to the functions that do the work."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from artefact.api.cli import audit, bench, bundle, index, keys, model, objects, search, serve, signing
from artefact.api.cli import eval as evaluation
from artefact.api.cli.common import EXIT_ERROR, SWITCHES, run_command
from artefact.api.http.security import ROLES
from artefact.api.settings import Settings
from artefact.embed.models import EFFICIENTNET_LITE0, OPEN_CLIP
from artefact.embed.runtimes.variants import AUTO, PRECISIONS, RUNTIMES
from artefact.index.bench.builder import OPENCV_DATA
from artefact.index.records import FILTER_FIELDS, STATUSES
from artefact.index.stores.choice import SPEC_HELP as STORE_SPEC_HELP

Subparsers = Any  # argparse's private _SubParsersAction
FILTER_HELP = "KEY=VALUE[,VALUE]; KEY: " + ", ".join(FILTER_FIELDS)


def _count(text: str) -> int:
    """A number of records to show: 1 to 500."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError("give a number from 1 to 500")
    return n


def _default(name: str) -> Any:
    """A setting's built-in default, for help texts (the value used is read from Settings at run time)."""
    return Settings.model_fields[name].default


def common_flags() -> argparse.ArgumentParser:
    """Installation and output flags, accepted before and after any subcommand."""
    # SUPPRESS: an option given before the subcommand is not reset by the subparser's default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = common.add_argument_group("installation and model")
    g.add_argument("--home", type=Path, help="data folder (catalogue, index, model cache, reports); env ARTEFACT_HOME")
    g.add_argument("--backend", choices=[OPEN_CLIP, EFFICIENTNET_LITE0],
                   help=f"model family (default: {OPEN_CLIP}, offline fallback {EFFICIENTNET_LITE0})")
    g.add_argument("--model", help="open_clip model name (e.g. ViT-B-32) or local-dir:/path/to/model_folder; "
                   "for efficientnet_lite0: tf_efficientnet_lite0+turned3d (default, adapted to turned 3D objects, "
                   "docs/curators.md) or the plain tf_efficientnet_lite0")
    g.add_argument("--pretrained", help="open_clip pretrained tag, checkpoint file, or 'none' for random weights")
    g.add_argument("--model-config-dir", type=Path, help="folder of extra open_clip model config JSON files")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, help="CPU threads for inference")
    g.add_argument("--runtime", choices=[AUTO, *RUNTIMES],
                   help="image-model runtime (default auto: the backbone's fastest that keeps recall); env ARTEFACT_RUNTIME")
    g.add_argument("--precision", choices=[AUTO, *PRECISIONS], help="fp32, int8 or auto (default); env ARTEFACT_PRECISION")
    g.add_argument("--offline", action="store_true", help="never try to download weights")
    g.add_argument("--vector-store", metavar="STORE",
                   help=f"where the vectors live: {STORE_SPEC_HELP}; recorded by a new home, later runs may omit it; "
                        "env ARTEFACT_VECTOR_STORE")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_flags()
    parser = argparse.ArgumentParser(
        argument_default=None,
        prog="artefact", description="Search catalogues of stolen and looted cultural objects by photo.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_index, _add_objects, _add_search, _add_serve, _add_keys, _add_audit, _add_eval, _add_bench_build,
                _add_model, bundle.register, signing.register):
        add(sub, common)
    return parser


def _add_index(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("index", help="build and inspect the index").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = group.add_parser("add", parents=[common], help="bulk-index a manifest (CSV or JSON Lines) of objects and photos")
    p.add_argument("manifest", help="manifest file; format in data/README.md")
    p.add_argument("--images", required=True,
                   help="folder the manifest's image paths are relative to, or an object-store URI (s3://, gs://, file://)")
    p.add_argument("--workers", type=int, help="decoding processes (default: cores - 1)")
    p.add_argument("--batch-size", type=int, help="photos per model batch")
    p.add_argument("--local-features", choices=["sift", "orb", "none"], default="sift",
                   help="local features stored for geometric verification (a new index only; default sift; "
                        "none ingests faster but disables the second look)")
    g = p.add_argument_group("distributed ingest on Ray (docs/scale-out.md)")
    g.add_argument("--ray", metavar="local|ADDRESS",
                   help="decode and embed on a Ray cluster: local (this machine) or the head's address (HOST:6379, ray://HOST:10001)")
    g.add_argument("--ray-actors", type=int, help="embedding actors, one model load each (default: one per GPU, else per CPU core)")
    g.add_argument("--ray-batch-size", type=int, help="photos per actor call (default 256 on GPUs, 32 on CPUs)")
    p.set_defaults(func=index.cmd_add)
    group.add_parser("stats", parents=[common], help="counts, model and file sizes").set_defaults(func=index.cmd_stats)
    p = group.add_parser("check", parents=[common], help="verify catalogue and index agree (read-only)")
    p.add_argument("--repair", action="store_true",
                   help="rebuild the vector index from the catalogue where they differ (takes the writer lock)")
    p.set_defaults(func=index.cmd_check)
    p = group.add_parser("calibrate", parents=[common], help="fit match verdicts on labelled queries (true objects + distractors)")
    p.add_argument("queries", help="query list (CSV/JSON Lines: query, expected_id; empty id = distractor)")
    p.add_argument("--depth", type=int, default=10, help="candidates per query used as samples")
    p.add_argument("--rerank", type=int, help="candidates given geometric verification")
    p.set_defaults(func=index.cmd_calibrate)
    p = group.add_parser("optimize", parents=[common],
                         help="(re)build the vector index: flat (exact) or compressed (ivf-pq, hnsw), tuned to a recall")
    p.add_argument("--type", choices=["auto", "flat", "ivf-pq", "hnsw"],
                   help="pin this kind (auto: chosen by size, the default until pinned)")
    p.add_argument("--target-recall", type=float, help="recall@10 against exact search to reach (default 0.98)")
    p.set_defaults(func=index.cmd_optimize)


def _add_objects(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("objects", help="show, list, change and retire records").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = group.add_parser("show", parents=[common], help="one record with its photos and history")
    p.add_argument("object_id")
    p.set_defaults(func=objects.cmd_show)
    p = group.add_parser("list", parents=[common], help="list records (all statuses unless filtered)")
    p.add_argument("--filter", action="append", help=FILTER_HELP)
    p.add_argument("--include-recovered", action="store_true", default=True, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(func=objects.cmd_list)
    p = group.add_parser("find", parents=[common], help="find records by words in their fields (title, maker, materials, "
                         "inscriptions, case reference, id ...): accents and case ignored, each word a prefix, best first")
    p.add_argument("words", nargs="+")
    p.add_argument("--filter", action="append", help=FILTER_HELP)
    p.add_argument("--include-recovered", action="store_true", help="also list recovered objects")
    p.add_argument("--limit", type=_count, default=20, help="most records shown (default 20, at most 500)")
    p.set_defaults(func=objects.cmd_find)
    p = group.add_parser("set-status", parents=[common], help="change status (recovered objects leave searches)")
    p.add_argument("object_id")
    p.add_argument("status", choices=STATUSES)
    p.set_defaults(func=objects.cmd_set_status)
    p = group.add_parser("remove", parents=[common], help="delete a record, its photos and vectors")
    p.add_argument("object_id")
    p.set_defaults(func=objects.cmd_remove)


def _add_search(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search by one or more photos of one object (and/or text)")
    p.add_argument("photos", nargs="*", help="photo files (JPEG, PNG, HEIC, ...) of the same object")
    p.add_argument("--text", help="text description (CLIP models only)")
    p.add_argument("-k", type=int, help=f"number of objects to return (default {_default('cli_results')})")
    p.add_argument("--filter", action="append", help=FILTER_HELP)
    p.add_argument("--include-recovered", action="store_true", help="also return recovered objects")
    p.add_argument("--min-score", type=float, help="similarity cut-off for a match (overrides calibrated verdicts)")
    p.add_argument("--rerank", type=int, help=f"top candidates given geometric verification (default {_default('rerank')})")
    p.add_argument("--no-rerank", action="store_true", help="embedding similarity only, no geometric verification")
    p.set_defaults(func=search.cmd_search)


def _add_serve(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the HTTP API (and web page)")
    p.add_argument("--host", help=f"address to bind (default {_default('host')})")
    p.add_argument("--port", type=int, help=f"port (default {_default('port')})")
    p.add_argument("--tls-cert", type=Path, help="TLS certificate chain (PEM); with --tls-key, serve HTTPS")
    p.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    p.add_argument("--trusted-proxy", action="append", metavar="ADDR",
                   help="a reverse proxy whose X-Forwarded-For/-Proto are believed (repeatable); env ARTEFACT_TRUSTED_PROXIES")
    p.set_defaults(func=serve.cmd_serve)


def _add_audit(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("audit", help="the service's audit trail").add_subparsers(dest="sub", required=True, metavar="SUB")
    group.add_parser("verify", parents=[common], help="check the hash chain of searches and requests (exit 1 if broken)"
                     ).set_defaults(func=audit.cmd_verify)


def _add_keys(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("keys", help="API keys with roles").add_subparsers(dest="sub", required=True, metavar="SUB")
    p = group.add_parser("create", parents=[common], help="create a key (printed once)")
    p.add_argument("--name", required=True, help="who or what uses the key")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--qr", action="store_true", help="also print a sign-in link (https://HOST/#key=CODE) and its QR code")
    p.add_argument("--url", help="the page's address for the link (default: from --host/--port settings)")
    p.add_argument("--qr-file", type=Path, metavar="PATH", help="write the QR code to PATH (.png or .svg)")
    p.set_defaults(func=keys.cmd_create)
    group.add_parser("list", parents=[common], help="list keys (never their secrets)").set_defaults(func=keys.cmd_list)
    p = group.add_parser("revoke", parents=[common], help="revoke a key")
    p.add_argument("name")
    p.set_defaults(func=keys.cmd_revoke)


def _add_eval(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure recall@k, mAP, GAP, false alarms and latency on a query list")
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
    p.set_defaults(func=evaluation.cmd_eval)


def _add_bench_build(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench-build", parents=[common], help="build checkpoint-like benchmark queries from a catalogue manifest")
    p.add_argument("manifest", help="catalogue manifest (CSV/JSONL), as for `index add`")
    p.add_argument("--images", required=True,
                   help="folder the manifest's image paths are relative to, or an object-store URI (s3://, gs://, file://)")
    p.add_argument("--out", required=True, help="benchmark folder to write")
    p.add_argument("--conditions", help="comma-separated subset (default: all; see artefact.index.bench.conditions)")
    p.add_argument("--severities", default="1,2,3", help="comma-separated, 1 (mild) to 3 (harsh)")
    p.add_argument("--objects", type=int, help="objects per condition and severity (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distractors", help="folder of photos of objects NOT in the catalogue")
    p.add_argument("--no-skimage-distractors", action="store_true", help="do not add scikit-image's photos as distractors")
    p.add_argument("--pairs", help=f"folder with OpenCV sample pairs (default: {OPENCV_DATA} if present)")
    p.add_argument("--no-pairs", action="store_true", help="no real second-photo pairs")
    p.add_argument("--index", action="store_true", help="also index the catalogue and pair objects into --home")
    p.set_defaults(func=bench.cmd_bench_build)


def _add_model(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("model", help="model information and download").add_subparsers(dest="sub", required=True, metavar="SUB")
    group.add_parser("info", parents=[common], help="the model this installation uses").set_defaults(func=model.cmd_info)
    group.add_parser("fetch", parents=[common], help="download weights into the cache (connected machine)").set_defaults(func=model.cmd_fetch)
    p = group.add_parser("export", parents=[common],
                         help="make the --runtime/--precision variant now (int8 calibrated on the catalogue's photos)")
    p.add_argument("--calibration-photos", type=int, default=64, help="catalogue photos for int8 calibration (default 64)")
    p.set_defaults(func=model.cmd_export)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as the commands read it: every common switch present (False when not given)."""
    args = build_parser().parse_args(argv)
    for flag in SWITCHES:  # SUPPRESS left out those no parser saw
        setattr(args, flag, getattr(args, flag, False))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run_command(args.func, args)
    except BrokenPipeError:
        # The reader went away (`artefact search ... | head`): no traceback; stdout is pointed at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
