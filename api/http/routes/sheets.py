"""Search sheet routes: the one-page sheet an officer hands over, as a printable page and as PDF, in the officer's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from artefact.api.http.deps import AuditDep, EngineDep, Officer
from artefact.api.http.lang import Strings
from artefact.api.http.routes.audit import SearchRef, own_record
from artefact.api.http.sheet import HTML_CSP, collect, render_html, render_pdf

router = APIRouter(prefix="/v1/searches", tags=["audit"])

Lang = Annotated[str, Query(max_length=16, description="the sheet's language (en, ar, de, el, es, fr, it, pt, ru, tr, "
                                                      "zh); another or none: English")]


# response_class stays the plain Response: as HTMLResponse it would document every error (JSON) as HTML too.
@router.get("/{search_id}/sheet", response_class=Response,
            summary="The search sheet to hand over, as a printable page (photos inline)",
            responses={200: {"content": {"text/html": {}}, "description": "the sheet"}})
def sheet_html(search_id: SearchRef, who: Officer, audit: AuditDep, eng: EngineDep, lang: Lang = "en") -> HTMLResponse:
    sheet = collect(own_record(audit, search_id, who), eng)
    return HTMLResponse(render_html(sheet, Strings(lang)),
                        headers={"Content-Security-Policy": HTML_CSP, "Cache-Control": "no-store"})


@router.get("/{search_id}/sheet.pdf", response_class=Response, summary="The search sheet as PDF",
            responses={200: {"content": {"application/pdf": {}}, "description": "the sheet"}})
def sheet_pdf(search_id: SearchRef, who: Officer, audit: AuditDep, eng: EngineDep, lang: Lang = "en") -> Response:
    record = own_record(audit, search_id, who)
    pdf = render_pdf(collect(record, eng), Strings(lang))
    name = f"search-sheet-{record.get('short_id') or record['search_id']}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
