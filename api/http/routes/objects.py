"""Object routes: list and read records with their photos; curators create, correct, re-status and delete them."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from artefact.api.http.deps import AuditDep, Curator, EngineDep, Officer, SettingsDep
from artefact.api.http.engine import Engine
from artefact.api.http.schemas import OFFSET_BOUND, DeletedOut, FieldsIn, ObjectChangeOut, ObjectOut, StatusIn
from artefact.api.http.uploads import check_count, prepare_photos
from artefact.embed.images import SUPPORTED_FORMATS
from artefact.index.catalogue import SearchFilters
from artefact.index.errors import CatalogueError
from artefact.index.keywords import MAX_QUERY_CHARS
from artefact.index.records import RECORD_FIELDS, ObjectRecord, record_from_mapping

router = APIRouter(prefix="/v1/objects", tags=["objects"])

FilterQuery = Annotated[str, Query(max_length=200)]
Photos = Annotated[list[UploadFile], File(description=f"photos of the object ({SUPPORTED_FORMATS})")]


def _view(eng: Engine, object_id: str) -> ObjectOut:
    view = eng.object_view(object_id)
    return ObjectOut.of(view.record, view.images)


@router.get("", response_model=list[ObjectOut],
            summary="List records, or find them by words (q: every word, accents and case ignored, prefixes, best first)")
def list_objects(
    who: Officer, eng: EngineDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="words to find in the records' fields "
                            "(title, maker, materials, inscriptions, case reference, id ...); unset: all, by id")] = "",
    status: FilterQuery = "", object_type: FilterQuery = "", country: FilterQuery = "", source: FilterQuery = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=OFFSET_BOUND)] = 0,
) -> list[ObjectOut]:
    filters = SearchFilters.parse({"status": [status], "object_type": [object_type], "country": [country],
                                   "source": [source]}, include_recovered=True)
    views = eng.find_objects(q, filters, limit, offset) if q.strip() else eng.list_objects(filters, limit, offset)
    return [ObjectOut.of(v.record, v.images) for v in views]


# `:path`: catalogue ids often hold slashes ("INV/2021/7"); a client sends them as %2F,
# which the server decodes before routing, so a plain {object_id} would answer 404.
@router.get("/{object_id:path}", response_model=ObjectOut)
def get_object(object_id: str, who: Officer, eng: EngineDep) -> ObjectOut:
    return _view(eng, object_id)


def _parse_record(raw: str) -> ObjectRecord:
    """A record from the form's JSON: known fields, the rest kept as extra."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"'record' is not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise CatalogueError("'record' must be a JSON object with a non-empty 'id'")
    return record_from_mapping(data)  # the rules for ids and values (RecordError: 422), as for manifests


def _changed(eng: Engine, object_id: str, warnings: list[str]) -> ObjectChangeOut:
    view = eng.object_view(object_id)
    return ObjectChangeOut(**ObjectOut.of(view.record, view.images).model_dump(), warnings=warnings)


@router.post("", response_model=ObjectChangeOut, status_code=201, summary="Create an object with its photos (curator)")
def create_object(
    who: Curator, eng: EngineDep, settings: SettingsDep,
    record: Annotated[str, Form(max_length=100_000, description='JSON: {"id": ..., "title": ..., "status": ...}')],
    photos: Photos,
) -> ObjectChangeOut:
    obj = _parse_record(record)
    check_count(photos, settings.max_photos)
    inputs, _ = prepare_photos(eng, photos, settings.max_photo_bytes)
    warnings = eng.create_object(obj, inputs, who.name)
    return _changed(eng, obj.object_id, warnings)


@router.post("/{object_id:path}/photos", response_model=ObjectChangeOut,
             summary="Add photos (curator); one already attached is skipped with a warning")
def add_photos(object_id: str, who: Curator, eng: EngineDep, settings: SettingsDep, photos: Photos) -> ObjectChangeOut:
    check_count(photos, settings.max_photos)
    inputs, _ = prepare_photos(eng, photos, settings.max_photo_bytes)
    warnings = eng.add_photos(object_id, inputs, who.name)
    return _changed(eng, object_id, warnings)


@router.patch("/{object_id:path}", response_model=ObjectOut, summary="Correct record fields (curator)")
def update_object(object_id: str, body: FieldsIn, who: Curator, eng: EngineDep) -> ObjectOut:
    unknown = [k for k in body.fields if k not in RECORD_FIELDS or k == "status"]
    if unknown:
        raise CatalogueError(f"unknown or read-only fields {', '.join(unknown)} (change status with PUT .../status)")
    eng.update_object(object_id, body.fields, who.name)
    return _view(eng, object_id)


@router.put("/{object_id:path}/status", response_model=ObjectOut, summary="Change status (curator)")
def set_status(object_id: str, body: StatusIn, who: Curator, eng: EngineDep) -> ObjectOut:
    eng.set_status(object_id, body.status, who.name)
    return _view(eng, object_id)


@router.delete("/{object_id:path}", response_model=DeletedOut,
               summary="Delete an object, its photos and vectors (curator)")
def delete_object(object_id: str, who: Curator, eng: EngineDep, audit: AuditDep) -> dict[str, Any]:
    # The evidence images drawn from this object's photos go with it (the search records stay).
    removed = eng.delete_object(object_id, who.name, evidence=audit.evidence_of(object_id))
    return {"deleted": object_id, "vectors_removed": removed}
