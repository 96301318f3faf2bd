"""HTTP errors: the service's own error types, one table from error type to status code, one handler."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artefact.embed.errors import (
    ArtefactError,
    ImageAspectError,
    ImageDecodeError,
    ImageTooLargeError,
    ModelUnavailableError,
    UnsupportedImageError,
)
from artefact.api.http.middleware import send_json
from artefact.embed.images import SUPPORTED_FORMATS
from artefact.index.errors import (
    CatalogueError,
    IndexMismatchError,
    IndexRebuildingError,
    ObjectNotFoundError,
    ReadOnlyHomeError,
    RecordError,
)
from artefact.index.stores.milvus import StoreUnavailableError

log = logging.getLogger(__name__)


class Unauthorized(ArtefactError):
    """No API key, or an unknown or revoked one."""


class Forbidden(ArtefactError):
    """The key's role is below what the operation needs."""


class NotReady(ArtefactError):
    """The model and index are still loading, or failed to load."""


class TooManyPhotos(ArtefactError):
    """More photos in one request than the configured limit."""


class NoTextTower(ArtefactError):
    """Text search asked of a model that has no text encoder."""


class ObjectExistsError(ArtefactError):
    """Create refused: the id is taken."""


class ImageNotFoundError(ArtefactError):
    """No such catalogue photo (or evidence image)."""


class RateLimited(ArtefactError):
    """A key made more searches than its per-minute limit; `retry_after` seconds until the next."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FontMissing(ArtefactError):
    """No font with the glyphs a search sheet needs is installed on the server."""


class LangTableError(ArtefactError):
    """A language table of the web page that is not in the one shape the server reads."""


# Most specific first: each error type maps to one status, its message becomes the detail.
ERROR_STATUS: tuple[tuple[type[ArtefactError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (NotReady, 503),
    (FontMissing, 503),
    (LangTableError, 500),
    (IndexRebuildingError, 503),
    (StoreUnavailableError, 503),  # the Milvus server (or Lite file) cannot be reached now
    (TooManyPhotos, 413),
    (ImageTooLargeError, 413),
    (UnsupportedImageError, 415),
    (ImageDecodeError, 422),
    (ImageAspectError, 422),
    (RecordError, 422),
    (ReadOnlyHomeError, 409),  # a curator's change sent to a search server instead of the writer host
    (ObjectNotFoundError, 404),
    (ImageNotFoundError, 404),
    (ObjectExistsError, 409),
    (IndexMismatchError, 409),
    (NoTextTower, 400),
    (ModelUnavailableError, 400),
    (CatalogueError, 400),
    (ArtefactError, 400),
)
# Headers a status always carries: how to authenticate, when to come back.
STATUS_HEADERS: dict[int, dict[str, str]] = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "5"}}

# What each status means to a client, documented on every operation in OpenAPI.
ERROR_RESPONSES: dict[int, str] = {
    400: "bad filter value or catalogue error", 401: "missing, unknown or revoked API key",
    403: "the key's role is too low", 404: "no such object, image or search record",
    409: "the object exists already, or the index was built with another model",
    413: "request, photo, photo count or pixel count over the limit",
    415: f"not an image in an accepted format ({SUPPORTED_FORMATS})",
    429: "the key's search rate limit is reached (Retry-After)",
    500: "unexpected error; the body's error_id finds it in the service log",
    503: "the model and index are still loading, or the index is rebuilding (Retry-After)",
}


def status_of(exc: ArtefactError) -> int:
    return next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))


async def artefact_error(request: Request, exc: ArtefactError) -> JSONResponse:
    """The one handler for the package's errors: status from the table, the message as detail."""
    status = status_of(exc)
    headers = dict(STATUS_HEADERS.get(status, {}))
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers or None)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404 route, 405, body limit), answered in the same JSON shape."""
    status = exc.status_code
    if status == 400 and str(exc.detail).startswith("Part exceeded maximum size"):
        # Starlette's per-part cap (1 MB) on a multipart form field: too large, like the body limit.
        status = 413
    return JSONResponse({"detail": exc.detail}, status_code=status, headers=exc.headers)


class UnexpectedErrors:
    """Pure ASGI, inside the other middleware: any other exception becomes a 500 JSON answer with an error id
    that is logged with the traceback. Not an `Exception` handler: Starlette runs that one outermost and
    re-raises after answering, and the server then drops the client's keep-alive connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            error_id = uuid.uuid4().hex[:16]
            log.error("unexpected error %s on %s %s", error_id, scope.get("method"), scope.get("path"), exc_info=exc)
            await send_json(send, 500, {"detail": f"internal error {error_id}; the service log has the details",
                                        "error_id": error_id})


def install(app: FastAPI) -> None:
    """Register the handlers on an app (call before adding other middleware: the catch-all goes innermost)."""
    app.exception_handler(ArtefactError)(artefact_error)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.add_middleware(UnexpectedErrors)
