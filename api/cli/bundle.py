"""`artefact bundle export | verify | import`: signed catalogue bundles carried to offline posts."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from artefact.api.cli.common import EXIT_OK, print_json
from artefact.api.cli.signing import passphrase
from artefact.api.settings import Settings
from artefact.embed.errors import ArtefactError
from artefact.embed.loader import load_embedder
from artefact.embed.models import ModelDescription
from artefact.index.bundle import export_bundle, freshness, import_bundle, read_bundle, trusted_keys
from artefact.index.bundle.importer import ModelCheck
from artefact.index.bundle.manifest import MODEL


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    report = export_bundle(settings.paths, Path(args.out), since=args.since, without_model=args.without_model,
                           signing_key=Path(args.sign) if args.sign else None, passphrase=passphrase())
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK
    m = report.manifest
    base = f" on {m.base_bundle_id}" if m.base_bundle_id else ""
    what = (f"{(report.delta_rows or {}).get('row_changes', 0)} changed records and photos" if m.kind == "delta"
            else f"{m.catalogue['objects']} objects, {m.catalogue['images']} photos")
    files = sum(p.role == MODEL for p in m.parts)
    model = ("model included" if m.model.get("weights_included")
             else f"{files} model files, not the weights" if files else "no model files")
    print(f"Wrote bundle {m.bundle_id} ({m.kind}{base}; {what}; {model}) to {report.path}: "
          f"{_mb(report.file_bytes)} in {report.seconds:.1f} s")
    print(f"  {'signed by key ' + report.signed_by if report.signed_by else 'UNSIGNED: posts refuse it unless --allow-unsigned'}")
    return EXIT_OK


def _trusted(args: argparse.Namespace, settings: Settings) -> dict:
    return trusted_keys(settings.paths, [Path(p) for p in args.trust or []])


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    verified = read_bundle(Path(args.file), _trusted(args, settings), allow_unsigned=args.allow_unsigned)
    if args.json:
        print_json(verified.to_dict())
        return EXIT_OK
    m = verified.manifest
    base = f" on {m.base_bundle_id}" if m.base_bundle_id else ""
    signer = f"signed by trusted key {verified.signed_by}" if verified.signed_by else "UNSIGNED (accepted: --allow-unsigned)"
    print(f"OK: bundle {m.bundle_id} ({m.kind}{base}), catalogue as of {m.created}, from installation {m.issuer}")
    print(f"  {signer}; {len(m.parts)} parts, {_mb(m.total_bytes)}, every size and SHA-256 matches; nothing missing")
    return EXIT_OK


def model_loader(settings: Settings) -> ModelCheck:
    """Whether this post can load exactly the model a bundle names (never downloading)."""
    options = dataclasses.replace(settings.load_options(), allow_download=False)

    def check(description: ModelDescription) -> bool:
        try:
            loaded = load_embedder(description.spec(), options).description
        except ArtefactError:
            return False
        return loaded.identity() == description.identity()

    return check


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    report = import_bundle(settings.paths, Path(args.file), trusted=_trusted(args, settings),
                           allow_unsigned=args.allow_unsigned, allow_older=args.allow_older,
                           model_available=model_loader(settings))
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK
    m = report.bundle.manifest
    fresh = freshness({"bundle_id": m.bundle_id, "created": m.created})
    print(f"Imported bundle {m.bundle_id} ({m.kind}) in {report.seconds:.1f} s: {fresh.line() if fresh else ''}, "
          f"{m.catalogue['objects']} objects, {m.catalogue['images']} photos")
    if report.model_files:
        print(f"  {report.model_files} model files placed in {settings.paths.models}")
    for note in report.notes:
        print(f"  note: {note}")
    print("  a running service moves to it with its next search, or now with POST /v1/admin/reload")
    return EXIT_OK


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("bundle", help="signed catalogue bundles for offline posts").add_subparsers(
        dest="sub", required=True, metavar="SUB")
    p = group.add_parser("export", parents=[common], help="write a full bundle, or a delta with --since")
    p.add_argument("out", metavar="OUT", help="bundle file to write")
    p.add_argument("--since", metavar="BUNDLE", help="only what changed since this bundle (issued from this home)")
    p.add_argument("--without-model", action="store_true", help="leave model files out (the post must hold the model)")
    p.add_argument("--sign", metavar="KEY", help="private key (.key) that signs the manifest")
    p.set_defaults(func=cmd_export)
    for name, func, text in (("verify", cmd_verify, "check signature, checksums and completeness; changes nothing"),
                             ("import", cmd_import, "verify, then switch this home to the bundle's catalogue")):
        p = group.add_parser(name, parents=[common], help=text)
        p.add_argument("file", metavar="FILE", help="bundle file")
        p.add_argument("--allow-unsigned", action="store_true", help="accept a bundle without signature")
        p.add_argument("--trust", action="append", metavar="PUB", help="also trust this public key (repeatable)")
        if name == "import":
            p.add_argument("--allow-older", action="store_true", help="accept a bundle older than the catalogue held")
        p.set_defaults(func=func)
