"""`artefact signing create`: the agency's Ed25519 key pair for signing catalogue bundles."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from artefact.api.cli.common import EXIT_OK, print_json
from artefact.api.settings import Settings
from artefact.index.bundle.signing import create_key_pair

PASSPHRASE_ENV = "ARTEFACT_SIGNING_PASSPHRASE"


def passphrase() -> bytes | None:
    """The signing key's passphrase, from the environment only (never a flag: flags show in `ps`)."""
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.out) if args.out else settings.paths.signing_keys
    pair = create_key_pair(folder, args.name, passphrase())
    if args.json:
        print_json({"private_key": str(pair.private_path), "public_key": str(pair.public_path), "key_id": pair.key_id})
        return EXIT_OK
    print(f"Signing key {pair.key_id}\n"
          f"  private: {pair.private_path}  (keep on this machine; sign with `bundle export --sign`)\n"
          f"  public:  {pair.public_path}  (copy to each post's HOME/trusted-keys/; tell them the key id)")
    return EXIT_OK


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("signing", help="keys that sign catalogue bundles").add_subparsers(
        dest="sub", required=True, metavar="SUB")
    p = group.add_parser("create", parents=[common], help=f"make an Ed25519 key pair (passphrase from {PASSPHRASE_ENV})")
    p.add_argument("--name", default="agency", help="file name of the pair (NAME.key, NAME.pub)")
    p.add_argument("--out", help="folder for the pair (default HOME/signing-keys)")
    p.set_defaults(func=cmd_create)
