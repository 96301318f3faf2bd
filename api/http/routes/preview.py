"""Preview route: an upright JPEG of a photo the browser cannot show itself (HEIC, TIFF, AVIF ...), to check and crop."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from artefact.api.http.deps import EngineDep, Searcher, StateDep
from artefact.api.http.uploads import read_upload
from artefact.embed.images import SUPPORTED_FORMATS

router = APIRouter(prefix="/v1", tags=["search"])

PREVIEW_SIDE_BOUND = 2048  # a preview is for the screen; the search itself gets the photo


# 422 is either a field FastAPI refused (a list of problems) or a photo that cannot be decoded (one sentence).
UNREADABLE = {"description": "a bad field, or a photo that is empty, truncated or corrupt", "content": {"application/json": {
    "schema": {"anyOf": [{"$ref": "#/components/schemas/ErrorOut"}, {"$ref": "#/components/schemas/HTTPValidationError"}]}}}}


@router.post("/preview", response_class=Response, summary="A JPEG preview of a photo, upright (officer; counts as a search "
             "for the rate limit)", responses={200: {"content": {"image/jpeg": {}}, "description": "the preview"},
                                               422: UNREADABLE})
def preview(
    who: Searcher, state: StateDep, eng: EngineDep,
    photo: Annotated[UploadFile, File(description=f"one photo ({SUPPORTED_FORMATS})")],
    max_side: Annotated[Optional[int], Form(ge=64, le=PREVIEW_SIDE_BOUND,
                                            description="long side of the preview (unset: the service's default)")] = None,
) -> Response:
    side = min(max_side or state.settings.preview_side, PREVIEW_SIDE_BOUND)
    jpeg = eng.preview(read_upload(photo, state.settings.max_photo_bytes), side)
    # Private: an officer's photo never sits in a shared cache.
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
