"""The HTTP service: versioned JSON API over the engine, with keys, limits, audit and metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artefact.api.audit import AuditLog
from artefact.api.metrics import Metrics
from artefact.api.security import KeyStore, role_allows
from artefact.api.service import Engine, ImageNotFoundError, ObjectExistsError, PhotoInput
from artefact.api.settings import Settings
from artefact.embed.errors import (
    ArtefactError,
    CatalogueError,
    ImageDecodeError,
    ImageTooLargeError,
    IndexMismatchError,
    ModelUnavailableError,
    ObjectNotFoundError,
    UnsupportedImageError,
)
from artefact.index.catalogue import SearchFilters
from artefact.index.records import RECORD_FIELDS, STATUSES, ObjectRecord
from artefact.index.search import SearchResult

log = logging.getLogger(__name__)

EVIDENCE_PER_SEARCH = 3

WEB_DIR = Path(__file__).parent / "web"

# Most specific first: each error type maps to one status and its own message.
ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (ImageTooLargeError, 413),
    (UnsupportedImageError, 415),
    (ImageDecodeError, 422),
    (ObjectNotFoundError, 404),
    (ImageNotFoundError, 404),
    (ObjectExistsError, 409),
    (IndexMismatchError, 409),
    (ModelUnavailableError, 400),
    (CatalogueError, 400),
    (ArtefactError, 400),
]


# -- request size limit (pure ASGI: counts bytes as they arrive, before any parsing) ---------
class _TooLarge(StarletteHTTPException):
    """Raised while a body is read past the limit. An HTTPException, because FastAPI wraps any
    other error raised during body parsing into a 400 "error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than the limit of {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than the limit of {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# -- response models (documented in OpenAPI) -------------------------------------------------
class ErrorOut(BaseModel):
    detail: str


ERROR_RESPONSES = {
    400: "bad filter value or catalogue error", 401: "missing, unknown or revoked API key",
    403: "the key's role is too low", 404: "no such object, image or search record",
    409: "the object exists already, or the index was built with another model",
    413: "request, photo, photo count or pixel count over the limit", 415: "not an image",
    503: "the model and index are still loading (Retry-After)",
}


class ImageOut(BaseModel):
    image_id: int
    url: str
    thumbnail_url: str
    width: int
    height: int
    sha256: str


class ObjectOut(BaseModel):
    id: str
    fields: dict[str, str]
    extra: dict[str, Any] = {}
    images: list[ImageOut] = []


class HitOut(BaseModel):
    query: int = Field(description="index of the query photo (or text) in the request, from 0")
    kind: str
    score: float
    image: ImageOut


class MatchOut(BaseModel):
    rank: int
    score: float = Field(description="cosine similarity, higher is closer")
    close: bool = Field(description="a strong or possible match")
    verdict: str = Field("", description="'strong match', 'possible match' or 'no close match'")
    probability: Optional[float] = Field(None, description="calibrated match probability, when the index is calibrated")
    inliers: Optional[int] = Field(None, description="geometrically verified local correspondences (re-ranking on)")
    evidence_url: Optional[str] = Field(None, description="query and catalogue photo side by side, correspondences drawn")
    object: ObjectOut
    hits: list[HitOut]


class SearchOut(BaseModel):
    search_id: str = Field(description="fetch the timestamped record at /v1/searches/{search_id}")
    at_utc: str
    verdict: str = Field(description="'close match' or 'no close match'")
    threshold: float
    matches: list[MatchOut]
    timings_ms: dict[str, float]


class TextQuery(BaseModel):
    text: str = Field(min_length=1, max_length=1000)
    k: int = Field(10, ge=1, le=100)
    min_score: Optional[float] = Field(None, ge=-1.0, le=1.0)
    status: list[str] = []
    object_type: list[str] = []
    country: list[str] = []
    source: list[str] = []
    include_recovered: bool = False


class FieldsIn(BaseModel):
    fields: dict[str, str] = Field(description="record fields to change: " + ", ".join(f for f in RECORD_FIELDS if f != "status"))


class StatusIn(BaseModel):
    status: str = Field(description="one of " + ", ".join(STATUSES))


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


def _image_out(image: Any) -> ImageOut:
    return ImageOut(
        image_id=image.image_id, url=f"/v1/images/{image.image_id}", thumbnail_url=f"/v1/images/{image.image_id}/thumbnail",
        width=image.width, height=image.height, sha256=image.sha256,
    )


def _object_out(record: ObjectRecord, images: list[Any]) -> ObjectOut:
    return ObjectOut(id=record.object_id, fields={f: record.fields.get(f, "") for f in RECORD_FIELDS},
                     extra=record.extra, images=[_image_out(i) for i in images])


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _filters(status: str, object_type: str, country: str, source: str, include_recovered: bool) -> SearchFilters:
    statuses = _split(status)
    bad = [s for s in statuses if s.lower() not in STATUSES]
    if bad:
        raise CatalogueError(f"unknown status {', '.join(bad)}: use one of {', '.join(STATUSES)}")
    return SearchFilters(statuses, _split(object_type), _split(country), _split(source), include_recovered)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the service. The engine (model + index) loads at start-up, not at import."""
    metrics = Metrics()
    state: dict[str, Any] = {"ready": False}
    settings.home.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(settings.home / "access.sqlite")
    audit = AuditLog(settings.home / "audit.sqlite", settings.home / "audit-photos",
                     settings.audit_keep_photos, settings.audit_retention_days)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def load() -> None:
            try:
                state["engine"] = engine or Engine(settings)
                audit.purge_photos()
                state["ready"] = True
            except ArtefactError as exc:
                state["error"] = str(exc)
                log.error("service not ready: %s", exc)

        loader = threading.Thread(target=load, name="engine-loader", daemon=True)
        loader.start()  # /healthz answers while the model loads; /readyz says when it is done
        yield
        loader.join(timeout=60)
        if "engine" in state:
            state["engine"].close()
        keys.close()
        audit.close()

    app = FastAPI(
        title="artefact-search",
        version="1",
        description="Search catalogues of stolen and looted cultural objects by photo. "
        "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        lifespan=lifespan,
        # The errors any route may answer, so clients (and schema-driven testers) know them.
        responses={code: {"model": ErrorOut, "description": text} for code, text in ERROR_RESPONSES.items()},
    )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[..., Any]) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        if status == 400 and str(exc.detail).startswith("Part exceeded maximum size"):
            # Starlette's per-part cap (1 MB) on a multipart form field: too large, like the body limit.
            status = 413
        return JSONResponse({"detail": exc.detail}, status_code=status, headers=exc.headers)

    @app.exception_handler(ArtefactError)
    async def artefact_error(request: Request, exc: ArtefactError) -> JSONResponse:
        status = next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service log has the details"}, status_code=500)

    bearer = HTTPBearer(auto_error=False)
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def principal(
        creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
        api_key: Optional[str] = Depends(api_key_header),
    ) -> Principal:
        token = api_key or (creds.credentials if creds else None)
        if keys.active_count() == 0:
            return Principal("anonymous", "admin")  # open mode: loopback only (checked at serve)
        if not token:
            raise Unauthorized("an API key is required (Authorization: Bearer <key> or X-API-Key)")
        key = keys.authenticate(token)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        return Principal(key.name, key.role)

    def role(needed: str) -> Callable[..., Principal]:
        def check(who: Principal = Depends(principal)) -> Principal:
            if not role_allows(who.role, needed):
                raise Forbidden(f"key {who.name!r} has role {who.role}; this needs {needed}")
            return who

        return check

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    def get_engine() -> Engine:
        if not state["ready"]:
            raise NotReady(state.get("error") or "the model and index are still loading; retry shortly")
        eng: Engine = state["engine"]
        return eng

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    # -- health and metrics ------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        if state["ready"]:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "loading" if "error" not in state else "failed",
                             "detail": state.get("error", "")}, status_code=503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics_endpoint() -> Response:
        if state["ready"]:
            s = state["engine"].stats()
            metrics.vectors.set(s["vectors"])
            metrics.objects.set(s["objects"])
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    # -- search ---------------------------------------------------------------------------
    def _respond(result: SearchResult, who: Principal, kind: str, query: dict[str, Any], k: int,
                 photos: list[PhotoInput], eng: Engine) -> SearchOut:
        for stage, ms in result.timings_ms.items():
            metrics.search_stage.labels(stage).observe(ms / 1000)
        matches = []
        with eng.lock:
            for rank, m in enumerate(result.matches, start=1):
                images = eng.library.catalogue.object_images(m.record.object_id)
                matches.append(MatchOut(
                    rank=rank, score=round(m.score, 4), close=m.close, verdict=m.verdict,
                    probability=None if m.probability is None else round(m.probability, 4), inliers=m.inliers,
                    evidence_url=None,
                    object=_object_out(m.record, images),
                    hits=[HitOut(query=h.query, kind=h.kind, score=round(h.score, 4), image=_image_out(h.image)) for h in m.hits],
                ))
        verdict = "no close match" if result.no_match else "close match"
        record = audit.record_search(
            who.name, kind, query, result.filters.to_dict(), k, result.threshold, verdict,
            [{"object_id": m.object.id, "score": m.score, "close": m.close, "verdict": m.verdict,
              "inliers": m.inliers, "probability": m.probability} for m in matches],
            eng.embedder.description.label(), [(p.sha256, p.data) for p in photos],
        )
        # Evidence images for the best verified matches, drawn once and kept with the record.
        drawn = 0
        for out, m in zip(matches, result.matches):
            if drawn >= EVIDENCE_PER_SEARCH or m.evidence is None or not photos:
                continue
            if eng.save_evidence(record["search_id"], out.rank, photos[m.evidence.query].image, m.evidence):
                out.evidence_url = f"/v1/searches/{record['search_id']}/evidence/{out.rank}"
                drawn += 1
        return SearchOut(search_id=record["search_id"], at_utc=record["at_utc"], verdict=verdict,
                         threshold=result.threshold, matches=matches,
                         timings_ms={k_: round(v, 1) for k_, v in result.timings_ms.items()})

    @app.post("/v1/search/photo", response_model=SearchOut, tags=["search"],
              summary="Search with one or more photos of the same object")
    def search_photo(
        photos: list[UploadFile] = File(..., description="JPEG, PNG, WebP, TIFF, BMP, GIF or HEIC photos of one object"),
        k: int = Form(10, ge=1, le=100),
        min_score: Optional[float] = Form(None, ge=-1.0, le=1.0),
        status: str = Form("", max_length=200),
        object_type: str = Form("", max_length=200),
        country: str = Form("", max_length=200),
        source: str = Form("", max_length=200),
        include_recovered: bool = Form(False),
        rerank: int = Form(20, ge=0, le=100, description="top candidates given geometric verification; 0 = off"),
        who: Principal = Depends(role("officer")),
    ) -> SearchOut:
        eng = get_engine()
        if not photos:
            raise CatalogueError("send at least one photo in the 'photos' field")
        if len(photos) > settings.max_photos:
            raise TooManyPhotos(f"{len(photos)} photos sent; at most {settings.max_photos} per search")
        filters = _filters(status, object_type, country, source, include_recovered)
        t0 = time.perf_counter()
        inputs = [eng.prepare(_read_upload(p, settings.max_photo_bytes), local_features=rerank > 0) for p in photos]
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = eng.search(inputs, [], min(k, settings.max_k), filters, min_score, decode_ms, rerank)
        query = {"photos_sha256": [p.sha256 for p in inputs], "filenames": [p.filename or "" for p in photos]}
        return _respond(result, who, "photo", query, k, inputs, eng)

    @app.post("/v1/search/text", response_model=SearchOut, tags=["search"], summary="Search by a text description (CLIP models)")
    def search_text(body: TextQuery, who: Principal = Depends(role("officer"))) -> SearchOut:
        eng = get_engine()
        if not eng.embedder.has_text:
            raise NoTextTower(
                f"the index's model {eng.embedder.description.label()} has no text tower: text search needs a CLIP model"
            )
        filters = _filters(",".join(body.status), ",".join(body.object_type), ",".join(body.country),
                           ",".join(body.source), body.include_recovered)
        result = eng.search([], [body.text], min(body.k, settings.max_k), filters, body.min_score)
        return _respond(result, who, "text", {"text": body.text}, body.k, [], eng)

    @app.get("/v1/searches/{search_id}", tags=["audit"], summary="A timestamped search record (proof of due diligence)")
    def get_search(search_id: str, who: Principal = Depends(role("officer"))) -> dict[str, Any]:
        record = audit.get(search_id)
        if record is None or (record["key_name"] != who.name and not role_allows(who.role, "admin")):
            raise ObjectNotFoundError(f"no search record {search_id} for this key")
        return record

    @app.get("/v1/searches/{search_id}/evidence/{rank}", tags=["audit"], response_class=FileResponse,
             summary="Why a match: query and catalogue photo with the verified correspondences drawn")
    def get_evidence(search_id: str, rank: int, who: Principal = Depends(role("officer"))) -> FileResponse:
        record = audit.get(search_id)
        if record is None or (record["key_name"] != who.name and not role_allows(who.role, "admin")):
            raise ObjectNotFoundError(f"no search record {search_id} for this key")
        path = get_engine().evidence_path(search_id, rank)
        if not path.is_file():
            raise ObjectNotFoundError(f"search {search_id} has no evidence image for rank {rank}")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/v1/audit/searches", tags=["audit"], summary="Export the search log as JSON Lines (admin)",
             # documents what the export really sends (errors stay JSON)
             responses={200: {"description": "one search record per line",
                              "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
    def export_audit(since: Optional[str] = Query(None, max_length=40, description="ISO-8601 UTC lower bound"),
                     who: Principal = Depends(role("admin"))) -> Response:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in audit.export(since))
        return Response(lines, media_type="application/x-ndjson")

    @app.get("/v1/audit/changes", tags=["audit"], summary="Catalogue changes: who changed what, when (admin)")
    def changes(object_id: Optional[str] = Query(None, max_length=200), limit: int = Query(100, ge=1, le=10000),
                who: Principal = Depends(role("admin"))) -> list[dict[str, Any]]:
        eng = get_engine()
        with eng.lock:
            return eng.library.catalogue.history(object_id, limit)

    # -- objects ---------------------------------------------------------------------------
    @app.get("/v1/objects", response_model=list[ObjectOut], tags=["objects"])
    def list_objects(
        status: str = Query("", max_length=200), object_type: str = Query("", max_length=200),
        country: str = Query("", max_length=200), source: str = Query("", max_length=200),
        limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
        who: Principal = Depends(role("officer")),
    ) -> list[ObjectOut]:
        eng = get_engine()
        filters = _filters(status, object_type, country, source, include_recovered=True)
        with eng.lock:
            records = eng.library.catalogue.list_objects(filters, limit=limit, offset=offset)
            return [_object_out(r, eng.library.catalogue.object_images(r.object_id)) for r in records]

    # `:path`: catalogue ids often hold slashes ("INV/2021/7"); a client sends them as %2F,
    # which the server decodes before routing, so a plain {object_id} would answer 404.
    @app.get("/v1/objects/{object_id:path}", response_model=ObjectOut, tags=["objects"])
    def get_object(object_id: str, who: Principal = Depends(role("officer"))) -> ObjectOut:
        eng = get_engine()
        with eng.lock:
            record = eng.library.catalogue.get_object(object_id)
            return _object_out(record, eng.library.catalogue.object_images(object_id))

    @app.post("/v1/objects", response_model=ObjectOut, status_code=201, tags=["objects"],
              summary="Create an object with its photos (curator)")
    def create_object(
        record: str = Form(..., max_length=100_000, description='JSON: {"id": ..., "title": ..., "status": ...}'),
        photos: list[UploadFile] = File(...),
        who: Principal = Depends(role("curator")),
    ) -> ObjectOut:
        eng = get_engine()
        try:
            data = json.loads(record)
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"'record' is not valid JSON ({exc.msg})") from exc
        if not isinstance(data, dict) or not str(data.get("id", "")).strip():
            raise CatalogueError("'record' must be a JSON object with a non-empty 'id'")
        if len(photos) > settings.max_photos:
            raise TooManyPhotos(f"{len(photos)} photos sent; at most {settings.max_photos} at once")
        fields = {f: str(data[f]) for f in RECORD_FIELDS if data.get(f) not in (None, "")}
        extra = {k: v for k, v in data.items() if k not in RECORD_FIELDS and k != "id"}
        obj = ObjectRecord(str(data["id"]).strip(), fields, extra)
        inputs = [eng.prepare(_read_upload(p, settings.max_photo_bytes)) for p in photos]
        eng.create_object(obj, inputs, who.name)
        return get_object(obj.object_id, who)

    @app.post("/v1/objects/{object_id:path}/photos", response_model=ObjectOut, tags=["objects"], summary="Add photos (curator)")
    def add_photos(object_id: str, photos: list[UploadFile] = File(...), who: Principal = Depends(role("curator"))) -> ObjectOut:
        eng = get_engine()
        if len(photos) > settings.max_photos:
            raise TooManyPhotos(f"{len(photos)} photos sent; at most {settings.max_photos} at once")
        inputs = [eng.prepare(_read_upload(p, settings.max_photo_bytes)) for p in photos]
        eng.add_photos(object_id, inputs, who.name)
        return get_object(object_id, who)

    @app.patch("/v1/objects/{object_id:path}", response_model=ObjectOut, tags=["objects"], summary="Correct record fields (curator)")
    def update_object(object_id: str, body: FieldsIn, who: Principal = Depends(role("curator"))) -> ObjectOut:
        eng = get_engine()
        unknown = [k for k in body.fields if k not in RECORD_FIELDS or k == "status"]
        if unknown:
            raise CatalogueError(f"unknown or read-only fields {', '.join(unknown)} (change status with PUT .../status)")
        eng.update_object(object_id, body.fields, who.name)
        return get_object(object_id, who)

    @app.put("/v1/objects/{object_id:path}/status", response_model=ObjectOut, tags=["objects"], summary="Change status (curator)")
    def set_status(object_id: str, body: StatusIn, who: Principal = Depends(role("curator"))) -> ObjectOut:
        eng = get_engine()
        eng.set_status(object_id, body.status, who.name)
        return get_object(object_id, who)

    @app.delete("/v1/objects/{object_id:path}", tags=["objects"], summary="Delete an object, its photos and vectors (curator)")
    def delete_object(object_id: str, who: Principal = Depends(role("curator"))) -> dict[str, Any]:
        eng = get_engine()
        removed = eng.delete_object(object_id, who.name)
        return {"deleted": object_id, "vectors_removed": removed}

    @app.get("/v1/images/{image_id}", tags=["objects"], response_class=FileResponse, summary="A catalogue photo")
    def get_image(image_id: int, who: Principal = Depends(role("officer"))) -> FileResponse:
        return FileResponse(get_engine().image_file(image_id))

    @app.get("/v1/images/{image_id}/thumbnail", tags=["objects"], response_class=FileResponse)
    def get_thumbnail(image_id: int, who: Principal = Depends(role("officer"))) -> FileResponse:
        return FileResponse(get_engine().thumbnail(image_id), media_type="image/jpeg")

    @app.get("/v1/stats", tags=["health"])
    def stats(who: Principal = Depends(role("officer"))) -> dict[str, Any]:
        s = get_engine().stats()
        s.pop("home", None)
        s.pop("index_file", None)
        return {**s, "threshold": get_engine().threshold}

    @app.get("/v1/whoami", tags=["health"], summary="The caller's key name and role (the web page shows curator tools by it)")
    def whoami(who: Principal = Depends(role("officer"))) -> dict[str, str]:
        return {"name": who.name, "role": who.role}

    @app.exception_handler(TooManyPhotos)
    async def too_many(request: Request, exc: TooManyPhotos) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(NoTextTower)
    async def no_text(request: Request, exc: NoTextTower) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    # The officers' web page: every asset served from here (works offline, no CDN).
    app.mount("/static", StaticFiles(directory=str(WEB_DIR)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.state.keys = keys
    app.state.audit = audit
    app.state.service_state = state
    return app


def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{upload.filename or 'photo'}: larger than the limit of {max_bytes} bytes")
    return data


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    pass


class NotReady(Exception):
    pass


class TooManyPhotos(Exception):
    pass


class NoTextTower(Exception):
    pass
