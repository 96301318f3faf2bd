"""`artefact keys create [--qr] | list | revoke`: the HTTP service's API keys, stored hashed in the home's access database.

`--qr` also prints a sign-in link (`https://HOST/#key=CODE`) and its QR code. The code sits after
`#`, which browsers never send to a server, and the page removes it from the address and history
before anything else, so the key reaches no server log and no kept URL. QR codes are made with
segno: pure Python with no dependencies, maintained, standard-conformant (ISO/IEC 18004), and it
writes terminal, PNG and SVG output itself.
"""

from __future__ import annotations

import argparse
import io
import os
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlsplit

import segno

from artefact.api.cli.common import EXIT_OK, UsageError, print_json
from artefact.api.http.security import ApiKey, KeyStore
from artefact.api.settings import Settings
from artefact.embed.fileio import PRIVATE_FILE_MODE, atomic_write_bytes, private_dir

QR_KINDS = {".png": "png", ".svg": "svg"}


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    qr_file: Path | None = getattr(args, "qr_file", None)
    want_qr = getattr(args, "qr", False) or qr_file is not None
    if qr_file is not None and qr_file.suffix.lower() not in QR_KINDS:
        raise UsageError(f"--qr-file must end in {' or '.join(QR_KINDS)}, not {qr_file.name!r}")
    base = service_url(getattr(args, "url", None), settings) if want_qr else ""
    private_dir(settings.home)
    with closing(KeyStore(settings.paths.access)) as store:
        token = store.create(args.name, args.role)
    link = sign_in_link(base, token) if want_qr else None
    qr = segno.make(link, error="m") if link else None
    if qr is not None and qr_file is not None:
        write_qr(qr, qr_file)
    if args.json:
        print_json({"name": args.name, "role": args.role, "key": token, **({"link": link} if link else {}),
                    **({"qr_file": str(qr_file)} if qr_file else {})})
        return EXIT_OK
    print(f"API key for {args.name} ({args.role}); shown once, store it safely:\n{token}")
    if link and qr is not None:
        print(f"\nSign-in link (opens the page signed in; the code never reaches the server's logs):\n{link}\n")
        if getattr(args, "qr", False):
            out = io.StringIO()
            qr.terminal(out=out, compact=True)
            print(out.getvalue(), end="")
        if qr_file is not None:
            print(f"QR code written to {qr_file} (it holds the key: keep it as safely)")
    return EXIT_OK


def service_url(url: str | None, settings: Settings) -> str:
    """The page's address: `url` as given, else the service's host and port (https when it serves TLS)."""
    if not url:
        scheme = "https" if settings.tls_cert else "http"
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"{scheme}://{host}:{settings.port}/"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"--url must be the page's address, like https://search.example.org/, not {url!r}")
    return url if url.endswith("/") else url + "/"


def sign_in_link(base: str, token: str) -> str:
    """`base#key=CODE`: the page reads the code from the fragment, which no browser sends to a server."""
    return f"{base}#key={quote(token, safe='')}"


def write_qr(qr: segno.QRCode, path: Path) -> None:
    """The QR code as PNG or SVG, readable by the owner only (it carries the key)."""
    buffer = io.BytesIO()
    qr.save(buffer, kind=QR_KINDS[path.suffix.lower()], scale=8, border=4)
    atomic_write_bytes(path, buffer.getvalue())
    os.chmod(path, PRIVATE_FILE_MODE)


def existing_key_store(settings: Settings) -> KeyStore:
    """The home's key store for revoking: a home without keys is a usage error, not a new empty store."""
    if not settings.paths.access.exists():
        raise UsageError(f"no keys in {settings.home}: create one with `artefact keys create NAME --role ROLE`")
    return KeyStore(settings.paths.access)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    keys: list[ApiKey] = []
    if settings.paths.access.exists():  # listing never creates the home or its key store
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
    with closing(existing_key_store(settings)) as store:
        store.revoke(args.name)
    print(f"key {args.name} revoked")
    return EXIT_OK
