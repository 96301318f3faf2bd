"""Search routes: by photo and by text. Each search is recorded in the audit log with its evidence images."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, File, Form, UploadFile

from artefact.api.http.deps import EngineDep, Searcher, ServiceState, StateDep
from artefact.api.http.engine import Engine, PhotoInput
from artefact.api.http.errors import NoTextTower
from artefact.api.http.schemas import K_BOUND, HitOut, ImageOut, MatchOut, ObjectOut, SearchOut, TextQuery
from artefact.api.http.security import Principal
from artefact.api.http.uploads import check_count, prepare_photos
from artefact.embed.images import SUPPORTED_FORMATS
from artefact.index.catalogue import SearchFilters
from artefact.index.errors import CatalogueError
from artefact.index.search import SearchResult

router = APIRouter(prefix="/v1/search", tags=["search"])

EVIDENCE_PER_SEARCH = 3  # evidence images drawn for the best verified matches of one search

FilterForm = Annotated[str, Form(max_length=200)]


@router.post("/photo", response_model=SearchOut, summary="Search with one or more photos of the same object")
def search_photo(
    who: Searcher,
    state: StateDep,
    eng: EngineDep,
    photos: Annotated[list[UploadFile], File(description=f"photos of one object ({SUPPORTED_FORMATS})")],
    k: Annotated[Optional[int], Form(ge=1, le=K_BOUND, description="objects to return (unset: the service's default)")] = None,
    min_score: Annotated[Optional[float], Form(ge=-1.0, le=1.0)] = None,
    status: FilterForm = "",
    object_type: FilterForm = "",
    country: FilterForm = "",
    source: FilterForm = "",
    include_recovered: Annotated[bool, Form()] = False,
    rerank: Annotated[Optional[int], Form(ge=0, le=K_BOUND, description="top candidates given geometric "
                                          "verification (unset: the service's default); 0 = off")] = None,
) -> SearchOut:
    if not photos:
        raise CatalogueError("send at least one photo in the 'photos' field")
    check_count(photos, state.settings.max_photos, "per search")
    filters = SearchFilters.parse({"status": [status], "object_type": [object_type], "country": [country],
                                   "source": [source]}, include_recovered)
    rerank = state.settings.rerank if rerank is None else rerank
    inputs, decode_ms = prepare_photos(eng, photos, state.settings.max_photo_bytes, local_features=rerank > 0)
    k = state.settings.http_results if k is None else k
    result = eng.search(inputs, [], k, filters, min_score, decode_ms, rerank)
    query = {"photos_sha256": [p.sha256 for p in inputs], "filenames": [p.filename or "" for p in photos]}
    return _respond(state, eng, who, result, "photo", query, k, inputs)


@router.post("/text", response_model=SearchOut, summary="Search by a text description (CLIP models)")
def search_text(who: Searcher, state: StateDep, eng: EngineDep, body: TextQuery) -> SearchOut:
    if not eng.embedder.has_text:
        raise NoTextTower(
            f"the index's model {eng.embedder.description.label()} has no text tower: text search needs a CLIP model"
        )
    filters = SearchFilters.parse({"status": body.status, "object_type": body.object_type, "country": body.country,
                                   "source": body.source}, body.include_recovered)
    k = state.settings.http_results if body.k is None else body.k
    result = eng.search([], [body.text], k, filters, body.min_score)
    return _respond(state, eng, who, result, "text", {"text": body.text}, k, [])


def _respond(state: ServiceState, eng: Engine, who: Principal, result: SearchResult, kind: str,
             query: dict[str, Any], k: int, photos: list[PhotoInput]) -> SearchOut:
    """The answer: matches with their objects' photos, recorded in the audit log, evidence drawn."""
    for stage, ms in result.timings_ms.items():
        state.metrics.search_stage.labels(stage).observe(ms / 1000)
    matches = _matches(result, eng)
    verdict = "no close match" if result.no_match else "close match"
    record = state.audit.record_search(
        who.name, kind, query, result.filters.to_dict(), k, result.threshold, verdict,
        [{"object_id": m.object.id, "score": m.score, "close": m.close, "verdict": m.verdict,
          "inliers": m.inliers, "probability": m.probability,
          # the catalogue photo that matched best, shown on the search's sheet
          "image_id": m.hits[0].image.image_id if m.hits else None} for m in matches],
        eng.embedder.description.label(), [(p.sha256, p.data) for p in photos],
    )
    search_id = record["search_id"]
    eng.save_query_photos(search_id, [p.image for p in photos])
    _attach_evidence(eng, search_id, result, matches, photos)
    return SearchOut(search_id=search_id, short_id=record["short_id"], at_utc=record["at_utc"], verdict=verdict,
                     sheet_url=f"/v1/searches/{search_id}/sheet", sheet_pdf_url=f"/v1/searches/{search_id}/sheet.pdf",
                     threshold=result.threshold, matches=matches,
                     timings_ms={stage: round(ms, 1) for stage, ms in result.timings_ms.items()})


def _matches(result: SearchResult, eng: Engine) -> list[MatchOut]:
    images = eng.images_of([m.record.object_id for m in result.matches])
    return [
        MatchOut(
            rank=rank, score=round(m.score, 4), close=m.close, verdict=m.verdict,
            probability=None if m.probability is None else round(m.probability, 4), inliers=m.inliers,
            evidence_url=None, object=ObjectOut.of(m.record, images[m.record.object_id]),
            hits=[HitOut(query=h.query, kind=h.kind, score=round(h.score, 4), image=ImageOut.of(h.image)) for h in m.hits],
        )
        for rank, m in enumerate(result.matches, start=1)
    ]


def _attach_evidence(eng: Engine, search_id: str, result: SearchResult, matches: list[MatchOut],
                     photos: list[PhotoInput]) -> None:
    """Evidence images for the best verified matches, drawn once and kept with the search record."""
    drawn = 0
    for out, m in zip(matches, result.matches):
        if drawn >= EVIDENCE_PER_SEARCH or m.evidence is None or not photos:
            continue
        if eng.save_evidence(search_id, out.rank, photos[m.evidence.query].image, m.evidence):
            out.evidence_url = f"/v1/searches/{search_id}/evidence/{out.rank}"
            drawn += 1
