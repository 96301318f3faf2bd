"""Image routes: catalogue photos and their cached thumbnails."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from artefact.api.http.deps import EngineDep, Officer
from artefact.api.http.schemas import ID_BOUND

router = APIRouter(prefix="/v1/images", tags=["objects"])

# Any SQLite integer (an id never issued is a 404); a larger one would overflow inside SQLite.
ImageId = Annotated[int, Path(ge=-ID_BOUND - 1, le=ID_BOUND, description="a catalogue photo's id")]


@router.get("/{image_id}", response_class=FileResponse, summary="A catalogue photo, with its image type")
def get_image(image_id: ImageId, who: Officer, eng: EngineDep) -> FileResponse:
    path, media_type = eng.photo(image_id)
    return FileResponse(path, media_type=media_type)


@router.get("/{image_id}/thumbnail", response_class=FileResponse)
def get_thumbnail(image_id: ImageId, who: Officer, eng: EngineDep) -> FileResponse:
    return FileResponse(eng.thumbnail(image_id), media_type="image/jpeg")
