"""The HTTP service's app factory: state, start-up (the engine loads in the background), middleware and routers."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from artefact.api.http import errors
from artefact.api.http.audit import AuditLog
from artefact.api.http.deps import ServiceState
from artefact.api.http.engine import Engine
from artefact.api.http.metrics import Metrics
from artefact.api.http.gate import Gate, OpenMode
from artefact.api.http.middleware import BodyLimit, SecurityHeaders, request_metrics
from artefact.api.http.ratelimit import RateLimiter
from artefact.api.http.routes import admin, audit, health, images, objects, preview, search, sheets, web
from artefact.api.http.schemas import ErrorOut
from artefact.api.http.security import KeyStore
from artefact.api.settings import Settings
from artefact.embed.errors import ArtefactError
from artefact.embed.fileio import private_dir

log = logging.getLogger(__name__)


def _load_engine(state: ServiceState, engine: Engine | None) -> None:
    """Runs in a thread at start-up: /healthz answers while the model loads, /readyz says when it is done."""
    try:
        state.engine = engine or Engine(state.settings)
        state.audit.purge_photos()
        state.ready = True
    except ArtefactError as exc:
        state.error = str(exc)
        log.error("service not ready: %s", exc)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the service. The engine (model + index) loads at start-up, not at import."""
    paths = settings.paths
    private_dir(settings.home)
    keys = KeyStore(paths.access)
    state = ServiceState(
        settings=settings, metrics=Metrics(), keys=keys,
        audit=AuditLog(paths.audit, paths.audit_photos, settings.audit_keep_photos, settings.audit_retention_days),
        # Decided here, once: a key created later ends it, a key revoked never brings it back.
        open_mode=OpenMode(keys, settings.host),
        search_limit=RateLimiter(settings.search_rate_per_minute),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=_load_engine, args=(state, engine), name="engine-loader", daemon=True)
        loader.start()
        yield
        loader.join(timeout=60)
        if state.engine is not None:
            state.engine.close()
        state.keys.close()
        state.audit.close()

    app = FastAPI(
        title="artefact-search",
        version="1",
        description="Search catalogues of stolen and looted cultural objects by photo. "
        "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        lifespan=lifespan,
        # The errors any route may answer, so clients (and schema-driven testers) know them.
        responses={code: {"model": ErrorOut, "description": text} for code, text in errors.ERROR_RESPONSES.items()},
    )
    app.state.service = state
    # Innermost first: each add_middleware wraps the ones before it.
    errors.install(app)  # an unexpected error becomes a JSON 500 inside every other layer
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.middleware("http")(request_metrics(state.metrics))
    app.add_middleware(Gate, keys=state.keys, audit=state.audit, open_mode=state.open_mode)
    if settings.cors_origins:  # off unless configured: the page is served from here, same origin
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    for module in (health, search, preview, audit, sheets, objects, images, admin, web):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(web.WEB_DIR)), name="static")
    return app
