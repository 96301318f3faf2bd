"""`artefact serve`: run the HTTP API and web page, refusing an open network address without API keys."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from contextlib import closing

from artefact.api.cli.common import EXIT_OK, UsageError
from artefact.api.http.security import KeyStore
from artefact.api.settings import Settings

log = logging.getLogger("artefact")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # The web stack is imported here, not at module level: every other command would
    # otherwise pay for loading FastAPI, its routes and uvicorn at start-up.
    import uvicorn

    from artefact.api.http.allocator import tune_for_service
    from artefact.api.http.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    settings.home.mkdir(parents=True, exist_ok=True)
    with closing(KeyStore(settings.paths.access)) as keys:
        n_keys = keys.active_count()
    if n_keys == 0 and not is_loopback(host) and not (args.insecure or settings.insecure):
        raise UsageError(
            f"refusing to listen on {host} with no API keys: anyone on the network could search and edit. "
            "Create keys first (`artefact keys create --role officer --name NAME`), or pass --insecure."
        )
    if n_keys == 0:
        log.warning("no API keys configured: the service is open to anyone who can reach %s:%s", host, port)
    applied = tune_for_service()  # before uvicorn starts its threads, so they obey it
    log.debug("malloc settings applied: %s", applied)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning" if args.quiet else "info")
    return EXIT_OK
