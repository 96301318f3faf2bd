"""Audit routes: a search's timestamped record and evidence images, the search log and the catalogue's change history."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from artefact.api.http.audit import AuditLog
from artefact.api.http.deps import Admin, AuditDep, EngineDep, Officer
from artefact.api.http.schemas import K_BOUND
from artefact.api.http.security import Principal, role_allows
from artefact.index.errors import ObjectNotFoundError

router = APIRouter(prefix="/v1", tags=["audit"])


def own_record(audit: AuditLog, search_id: str, who: Principal) -> dict[str, Any]:
    """A search record, if the caller made the search or is an admin (others get 404, not 403: ids stay private)."""
    record = audit.get(search_id)
    if record is None or (record["key_name"] != who.name and not role_allows(who.role, "admin")):
        raise ObjectNotFoundError(f"no search record {search_id} for this key")
    return record


SearchRef = Annotated[str, Path(max_length=64, description="the search's long id or its short reference (S-4F2K)")]


@router.get("/searches/{search_id}", summary="A timestamped search record (proof of due diligence), by long id or short reference")
def get_search(search_id: SearchRef, who: Officer, audit: AuditDep) -> dict[str, Any]:
    return own_record(audit, search_id, who)


@router.get("/searches/{search_id}/evidence/{rank}", response_class=FileResponse,
            summary="Why a match: query and catalogue photo with the verified correspondences drawn")
def get_evidence(search_id: SearchRef, rank: Annotated[int, Path(ge=1, le=K_BOUND)], who: Officer, audit: AuditDep,
                 eng: EngineDep) -> FileResponse:
    search_id = own_record(audit, search_id, who)["search_id"]
    path = eng.evidence_path(search_id, rank)
    if not path.is_file():
        raise ObjectNotFoundError(f"search {search_id} has no evidence image for rank {rank}")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/audit/searches", summary="Export the search log as JSON Lines (admin)",
            # documents what the export really sends (errors stay JSON)
            responses={200: {"description": "one search record per line",
                             "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
def export_audit(who: Admin, audit: AuditDep,
                 since: Annotated[Optional[str], Query(max_length=40, description="ISO-8601 UTC lower bound")] = None,
                 ) -> Response:
    return Response(audit.export_jsonl(since), media_type="application/x-ndjson")


@router.get("/audit/trail", summary="Export the hash-chained trail of authenticated requests and searches (admin)",
            responses={200: {"description": "one chain row per line",
                             "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
def export_trail(who: Admin, audit: AuditDep,
                 since: Annotated[Optional[str], Query(max_length=40, description="ISO-8601 UTC lower bound")] = None,
                 ) -> Response:
    return Response("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in audit.trail(since)),
                    media_type="application/x-ndjson")


@router.get("/audit/changes", summary="Catalogue changes: who changed what, when (admin)")
def changes(who: Admin, eng: EngineDep, object_id: Annotated[Optional[str], Query(max_length=200)] = None,
            limit: Annotated[int, Query(ge=1, le=10000)] = 100) -> list[dict[str, Any]]:
    return eng.history(object_id, limit)
