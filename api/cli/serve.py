"""`artefact serve`: run the HTTP API and web page; open (no keys) on loopback only, TLS or a loud warning off it."""

from __future__ import annotations

import argparse
import logging
import socket
from contextlib import closing
from pathlib import Path
from typing import Any

from artefact.api.cli.common import EXIT_OK, UsageError
from artefact.api.http.security import KeyStore, is_loopback
from artefact.api.settings import Settings
from artefact.embed.fileio import private_dir

log = logging.getLogger("artefact")


def serve_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings `serve` runs with: flags over environment, checked before anything listens.

    Raises:
        UsageError: open mode off loopback, half a TLS pair, or a TLS file that is missing.
    """
    # --port 0 is a port like any other (the OS picks a free one), not "unset".
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (0-65535; 0: any free port)")
    updates: dict[str, Any] = {"host": args.host or settings.host, "port": port}
    if getattr(args, "tls_cert", None):
        updates["tls_cert"] = args.tls_cert
    if getattr(args, "tls_key", None):
        updates["tls_key"] = args.tls_key
    if getattr(args, "trusted_proxy", None):
        updates["trusted_proxies"] = args.trusted_proxy
    settings = settings.model_copy(update=updates)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("TLS needs both --tls-cert and --tls-key (PEM files)")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"TLS file {path} does not exist")
    private_dir(settings.home)
    with closing(KeyStore(settings.paths.access)) as keys:
        ever_keyed = keys.ever_had_keys()
    if not ever_keyed and not is_loopback(settings.host):
        raise UsageError(
            f"refusing to listen on {settings.host} with no API keys: anyone on the network could search and edit. "
            "Create keys first (`artefact keys create --role officer --name NAME`); open mode is for this machine only."
        )
    return settings


def transport_warning(settings: Settings) -> str | None:
    """The loud warning for plain HTTP off loopback, or None."""
    if settings.tls_cert is not None or is_loopback(settings.host):
        return None
    return ("\n*** PLAIN HTTP ON A NETWORK ADDRESS ***\n"
            f"Listening on {settings.host}:{settings.port} without TLS: API keys, query photos and records cross "
            "the network in clear. Pass --tls-cert and --tls-key, or listen on 127.0.0.1 behind a TLS reverse "
            "proxy (docs/deployment.md).\n")


def uvicorn_options(settings: Settings, quiet: bool) -> dict[str, Any]:
    """What uvicorn.run gets besides the app: address, TLS files, and whose forwarding headers it believes."""
    return {
        "host": settings.host, "port": settings.port, "log_level": "warning" if quiet else "info",
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default; here only from configured proxies.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) if settings.trusted_proxies else "",
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening (port 0: the OS picks a free one), for uvicorn to serve.

    Bound here rather than by uvicorn so the port actually bound is known before serving: a caller
    that asked for port 0 reads it from the `listening on` line, with no window in which another
    process could take a port picked earlier.

    Raises:
        UsageError: the address cannot be bound (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides it
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog; connections wait in it until the app serves
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def listening_line(settings: Settings, sock: socket.socket) -> str:
    """The one line `serve` prints once it listens, e.g. `listening on http://127.0.0.1:8000` (scripts read it)."""
    scheme = "https" if settings.tls_cert is not None else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"listening on {scheme}://{host}:{sock.getsockname()[1]}"


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # The web stack is imported here, not at module level: every other command would
    # otherwise pay for loading FastAPI, its routes and uvicorn at start-up.
    import uvicorn

    from artefact.api.http.allocator import tune_for_service
    from artefact.api.http.app import create_app

    settings = serve_settings(args, settings)
    sock = listening_socket(settings.host, settings.port)
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})  # the port bound, were 0 asked
    warning = transport_warning(settings)
    if warning:
        log.warning(warning)
    with closing(KeyStore(settings.paths.access)) as keys:
        if not keys.ever_had_keys():
            log.warning("no API key was ever created: open mode, anyone on this machine may search and edit "
                        "(answers %s only)", settings.host)
    applied = tune_for_service()  # before uvicorn starts its threads, so they obey it
    log.debug("malloc settings applied: %s", applied)
    config = uvicorn.Config(create_app(settings), **uvicorn_options(settings, args.quiet))
    print(listening_line(settings, sock), flush=True)  # printed even with -q: it is the port's only record
    with closing(sock):
        uvicorn.Server(config).run(sockets=[sock])
    return EXIT_OK
