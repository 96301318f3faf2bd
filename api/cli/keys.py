"""`artefact keys create | list | revoke`: the HTTP service's API keys, stored hashed in the home's access database."""

from __future__ import annotations

import argparse
from contextlib import closing

from artefact.api.cli.common import EXIT_OK, print_json
from artefact.api.http.security import ApiKey, KeyStore
from artefact.api.settings import Settings
from artefact.embed.fileio import private_dir


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    private_dir(settings.home)
    with closing(KeyStore(settings.paths.access)) as store:
        token = store.create(args.name, args.role)
    if args.json:
        print_json({"name": args.name, "role": args.role, "key": token})
    else:
        print(f"API key for {args.name} ({args.role}); shown once, store it safely:\n{token}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with closing(KeyStore(settings.paths.access)) as store:
        keys = store.list()
    if args.json:
        print_json([k.__dict__ for k in keys])
    elif keys:
        print("\n".join(format_key(k) for k in keys))
    return EXIT_OK


def format_key(k: ApiKey) -> str:
    state = f"revoked {k.revoked_at}" if k.revoked_at else f"active, last used {k.last_used_at or 'never'}"
    return f"{k.name:<24} {k.role:<8} created {k.created_at}  {state}"


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    with closing(KeyStore(settings.paths.access)) as store:
        store.revoke(args.name)
    print(f"key {args.name} revoked")
    return EXIT_OK
