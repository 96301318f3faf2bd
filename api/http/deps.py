"""Annotated dependencies of the routes: the service's state, the engine once loaded, the caller with a minimum role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Optional

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from artefact.api.http.audit import AuditLog
from artefact.api.http.engine import Engine
from artefact.api.http.errors import Forbidden, NotReady, RateLimited, Unauthorized
from artefact.api.http.gate import Caller, OpenMode
from artefact.api.http.metrics import Metrics
from artefact.api.http.ratelimit import RateLimiter
from artefact.api.http.security import KeyStore, Principal, role_allows
from artefact.api.settings import Settings


@dataclass
class ServiceState:
    """One app's long-lived parts; the engine arrives when the model and index have loaded."""

    settings: Settings
    keys: KeyStore
    audit: AuditLog
    metrics: Metrics
    open_mode: OpenMode
    search_limit: RateLimiter
    engine: Optional[Engine] = None
    ready: bool = False
    error: Optional[str] = None


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_audit(state: StateDep) -> AuditLog:
    return state.audit


def get_engine(state: StateDep) -> Engine:
    if not state.ready or state.engine is None:
        raise NotReady(state.error or "the model and index are still loading; retry shortly")
    return state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
EngineDep = Annotated[Engine, Depends(get_engine)]

_bearer = HTTPBearer(auto_error=False)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_principal(
    request: Request,
    creds: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)],
    api_key: Annotated[Optional[str], Depends(_api_key_header)],
) -> Principal:
    """The caller, from `Authorization: Bearer <key>` or `X-API-Key: <key>`.

    The gate (api/http/gate.py) has read the key already, so that attempts refused before any
    route runs are audited too; `creds` and `api_key` only document the schemes in OpenAPI.
    """
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None or caller.principal is None:
        raise Unauthorized(caller.problem if caller else "an API key is required")
    return caller.principal


def at_least(needed: str) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if their role is `needed` or higher."""

    def check(who: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not role_allows(who.role, needed):
            raise Forbidden(f"key {who.name!r} has role {who.role}; this needs {needed}")
        return who

    return check


def rate_limited_searcher(who: Annotated[Principal, Depends(at_least("officer"))], state: StateDep) -> Principal:
    """An officer (or higher) whose key has searches left this minute."""
    wait = state.search_limit.take(who.name)
    if wait:
        raise RateLimited(f"search limit of {state.settings.search_rate_per_minute} a minute reached for key "
                          f"{who.name!r}; retry in {wait} s", retry_after=wait)
    return who


Officer = Annotated[Principal, Depends(at_least("officer"))]
Searcher = Annotated[Principal, Depends(rate_limited_searcher)]
Curator = Annotated[Principal, Depends(at_least("curator"))]
Admin = Annotated[Principal, Depends(at_least("admin"))]
