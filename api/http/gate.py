"""The gate every request passes: open-mode checks, the caller's key, and an audit row for each authenticated attempt.

Open mode (no key ever created, loopback address) has no key to stop a hostile web page, so it
answers only loopback Host names (no DNS rebinding), refuses state changes from another origin
(no cross-site form posts) and refuses forwarded requests (no proxy turning it into a network
service). With keys, a request is who its key says, and every attempt by a known key is audited
with its outcome, whatever stage refused it (body limit, validation, image checks, role).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artefact.api.http.audit import AuditLog
from artefact.api.http.security import KeyStore, Principal, is_loopback

log = logging.getLogger(__name__)

ANONYMOUS = Principal("anonymous", "admin")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-real-ip")
# Not audited: public metadata, and photo downloads (one search page shows dozens of them).
UNAUDITED_PREFIXES = ("/v1/meta", "/v1/images/")
MAX_AUDITED_PATH = 300


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as the gate found it; the routes' dependencies read it."""

    principal: Optional[Principal]  # None: refused with `problem` by any route that needs a key
    problem: str = ""
    audit_name: Optional[str] = None  # the key's name (revoked ones too): its attempts are audited


class OpenMode:
    """Decided once when the app is built: no key ever created and a loopback address.

    It only ever ends: the first key created (by any process) closes it for good.
    """

    def __init__(self, keys: KeyStore, host: str) -> None:
        self.keys = keys
        self.on = is_loopback(host) and not keys.ever_had_keys()

    def __bool__(self) -> bool:
        if self.on and self.keys.ever_had_keys():
            self.on = False
            log.warning("an API key exists now: open mode ends, every request needs a key")
        return self.on


def _split_host(host: str) -> tuple[str, int | None]:
    """A Host header value as (name, port): 'localhost:8000' -> ('localhost', 8000), '[::1]' -> ('::1', None)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit():
            name, port = host, ""
    return name, (int(port) if port.isdigit() else None)


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether an Origin header names this service as the request reached it (scheme, name and port)."""
    default = {"http": 80, "https": 443}
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or default.get(parts.scheme)
    except ValueError:
        return False
    name, port = _split_host(host)
    return (parts.scheme == scheme and (parts.hostname or "") == name
            and origin_port == (port or default.get(scheme)))


def open_mode_problem(scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """Why an open-mode request is refused (status, message), or None."""
    for header in FORWARDING_HEADERS:
        if header in headers:
            return 403, (f"forwarded request refused ({header.decode()} header): this service has no API keys and "
                         "answers this machine only; create a key before putting it behind a proxy")
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if not host or not is_loopback(_split_host(host)[0]):
        return 400, (f"Host {host or '(none)'!r} is not a loopback name: this service has no API keys and answers "
                     "only localhost, 127.0.0.1 or [::1]")
    if scope["method"] in STATE_CHANGING:
        origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
        if origin and not _same_origin(origin, scope.get("scheme", "http"), host):
            return 403, (f"cross-origin change refused (Origin {origin!r}): without API keys only this "
                         "service's own page may change the catalogue")
        if headers.get(b"sec-fetch-site") == b"cross-site":
            return 403, "cross-site change refused: without API keys only this service's own page may change the catalogue"
    return None


def _token(headers: dict[bytes, bytes]) -> str | None:
    """The key from `X-API-Key: <key>` or `Authorization: Bearer <key>`."""
    api_key = headers.get(b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip() or None
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def identify(keys: KeyStore, open_mode: OpenMode, token: str | None) -> Caller:
    """The caller for a request's key (blocking: reads the key store)."""
    if token is None:
        if open_mode:
            return Caller(ANONYMOUS, audit_name=ANONYMOUS.name)
        return Caller(None, "an API key is required (Authorization: Bearer <key> or X-API-Key)")
    key = keys.identify(token)
    if key is None:
        return Caller(None, "unknown or revoked API key")
    if key.revoked_at is not None:
        return Caller(None, "unknown or revoked API key", audit_name=key.name)
    return Caller(Principal(key.name, key.role), audit_name=key.name)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Pure ASGI: open-mode checks, then the caller (in `scope['state']['caller']`), then the audit row."""

    def __init__(self, app: ASGIApp, keys: KeyStore, audit: AuditLog, open_mode: OpenMode) -> None:
        self.app, self.keys, self.audit, self.open_mode = app, keys, audit, open_mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        method = scope["method"]
        if self.open_mode:
            problem = open_mode_problem(scope, headers)
            if problem is not None:
                await _refuse(send, *problem)
                return
        token = _token(headers)
        caller = (await run_in_threadpool(identify, self.keys, self.open_mode, token) if token is not None
                  else identify(self.keys, self.open_mode, None))
        scope.setdefault("state", {})["caller"] = caller
        path: str = scope.get("path", "")
        audited = caller.audit_name is not None and path.startswith("/v1/") and not path.startswith(UNAUDITED_PREFIXES)
        if not audited:
            await self.app(scope, receive, send)
            return
        status = 0
        written = False
        client = scope.get("client")

        async def write_audit_row() -> None:
            nonlocal written
            written = True
            try:
                await run_in_threadpool(self.audit.record_request, caller.audit_name or "", method,
                                        path[:MAX_AUDITED_PATH], status or 500, client[0] if client else "")
            except Exception:  # an audit failure must be loud, and must not turn into a second answer
                log.exception("could not write the audit row of %s %s by %s", method, path, caller.audit_name)

        async def auditing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not written:
                await write_audit_row()  # before the answer completes: nothing is answered without its trace
            await send(message)

        try:
            await self.app(scope, receive, auditing_send)
        finally:
            if not written:  # no complete answer (an error, a disconnect): the attempt still counts
                await write_audit_row()
