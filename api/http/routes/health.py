"""Service routes: liveness, readiness, Prometheus metrics, catalogue stats, the caller's identity and the API's metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from artefact.api.http.deps import EngineDep, Officer, StateDep
from artefact.api.http.errors import STATUS_HEADERS
from artefact.api.http.schemas import MetaOut, meta

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> JSONResponse:
    if state.ready and state.engine is not None and state.engine.rebuilding:
        return JSONResponse({"status": "rebuilding", "detail": state.engine.rebuilding}, status_code=503,
                            headers=STATUS_HEADERS[503])
    if state.ready and state.engine is not None:
        # Still ready when stale (an old catalogue beats none), but the warning says so.
        fresh = state.engine.catalogue_freshness()
        return JSONResponse({"status": "ready", **({"freshness": fresh} if fresh else {})})
    if state.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "loading" if state.error is None else "failed",
                         "detail": state.error or ""}, status_code=503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics_endpoint(state: StateDep) -> Response:
    if state.ready and state.engine is not None and not state.engine.rebuilding:
        s = state.engine.stats()
        state.metrics.vectors.set(s["vectors"])
        state.metrics.objects.set(s["objects"])
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/stats")
def stats(who: Officer, eng: EngineDep) -> dict[str, Any]:
    return eng.public_stats()


@router.get("/v1/whoami", summary="The caller's key name and role (the web page shows curator tools by it)")
def whoami(who: Officer) -> dict[str, str]:
    return {"name": who.name, "role": who.role}


# No key needed: the same facts are public in /openapi.json, and the web page reads them before sign-in.
@router.get("/v1/meta", response_model=MetaOut, summary="Record fields, statuses and search defaults")
def get_meta(state: StateDep) -> MetaOut:
    s = state.settings
    return meta(results=s.http_results, max_k=s.max_k, rerank=s.rerank, search_timeout_s=s.search_timeout_s)
