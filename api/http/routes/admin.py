"""Admin routes: serve a newly imported catalogue bundle without a restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from artefact.api.http.deps import Admin, EngineDep

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/reload", summary="Serve a newly imported catalogue bundle now; answers its bundle id and date")
def reload(who: Admin, eng: EngineDep) -> dict[str, Any]:
    return eng.reload()
