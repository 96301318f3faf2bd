"""Image routes: catalogue photos and their cached thumbnails."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from artefact.api.http.deps import EngineDep, Officer

router = APIRouter(prefix="/v1/images", tags=["objects"])


@router.get("/{image_id}", response_class=FileResponse, summary="A catalogue photo")
def get_image(image_id: int, who: Officer, eng: EngineDep) -> FileResponse:
    return FileResponse(eng.image_file(image_id))


@router.get("/{image_id}/thumbnail", response_class=FileResponse)
def get_thumbnail(image_id: int, who: Officer, eng: EngineDep) -> FileResponse:
    return FileResponse(eng.thumbnail(image_id), media_type="image/jpeg")
