"""Request and response bodies of the HTTP API (pydantic models, documented in OpenAPI)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field, field_validator

from artefact.index.errors import RecordError
from artefact.index.records import (
    FILTER_FIELDS,
    MAX_FIELD_LENGTH,
    RECORD_FIELDS,
    STATUSES,
    ImageRecord,
    ObjectRecord,
    validate_field,
)

# The largest `k` or `rerank` a request may ask for (larger: 422); `Settings.max_k` caps the answer below it.
K_BOUND = 100
# Every integer a client sends is bounded (larger: 422, never an overflow inside SQLite or FAISS).
ID_BOUND = 2**63 - 1  # image ids are SQLite rowids (int64)
OFFSET_BOUND = 1_000_000_000  # list pages: far past any catalogue


class ErrorOut(BaseModel):
    detail: str
    error_id: Optional[str] = Field(None, description="on a 500: the id of the logged error")


class ImageOut(BaseModel):
    image_id: int
    url: str
    thumbnail_url: str
    width: int
    height: int
    sha256: str

    @classmethod
    def of(cls, image: ImageRecord) -> "ImageOut":
        return cls(image_id=image.image_id, url=f"/v1/images/{image.image_id}",
                   thumbnail_url=f"/v1/images/{image.image_id}/thumbnail",
                   width=image.width, height=image.height, sha256=image.sha256)


class ObjectOut(BaseModel):
    id: str
    fields: dict[str, str]
    extra: dict[str, Any] = {}
    images: list[ImageOut] = []

    @classmethod
    def of(cls, record: ObjectRecord, images: list[ImageRecord]) -> "ObjectOut":
        return cls(id=record.object_id, fields={f: record.fields.get(f, "") for f in RECORD_FIELDS},
                   extra=record.extra, images=[ImageOut.of(i) for i in images])


class ObjectChangeOut(ObjectOut):
    """An object after photos were given to it (create, add photos), with what was skipped and why."""

    warnings: list[str] = Field([], description="photos skipped (sent twice, already attached) or stored with a note")


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
    short_id: Optional[str] = Field(None, description="a short reference to read out (S-4F2K); /v1/searches/{short_id} "
                                    "finds the record too")
    sheet_url: Optional[str] = Field(None, description="the search sheet to hand over, as a printable page (?lang=xx)")
    sheet_pdf_url: Optional[str] = Field(None, description="the same sheet as PDF (?lang=xx)")
    at_utc: str
    verdict: str = Field(description="'close match' or 'no close match'")
    threshold: float
    matches: list[MatchOut]
    timings_ms: dict[str, float]


class TextQuery(BaseModel):
    text: str = Field(min_length=1, max_length=1000)
    k: Optional[int] = Field(None, ge=1, le=K_BOUND, description="objects to return (unset: the service's default)")
    min_score: Optional[float] = Field(None, ge=-1.0, le=1.0)
    status: list[str] = []
    object_type: list[str] = []
    country: list[str] = []
    source: list[str] = []
    include_recovered: bool = False


class FieldsIn(BaseModel):
    fields: dict[str, str] = Field(description="record fields to change: " + ", ".join(f for f in RECORD_FIELDS if f != "status")
                                   + f" (text, at most {MAX_FIELD_LENGTH} characters each; empty clears)")

    @field_validator("fields")
    @classmethod
    def _values_follow_the_record_rules(cls, fields: dict[str, str]) -> dict[str, str]:
        try:  # the rules of index/records.py, as for manifests and created records
            return {name: validate_field(name, value) for name, value in fields.items()}
        except RecordError as exc:
            raise ValueError(str(exc)) from exc


class StatusIn(BaseModel):
    status: str = Field(description="one of " + ", ".join(STATUSES))


class DeletedOut(BaseModel):
    deleted: str
    vectors_removed: int


# Offered by every service of this version, whatever the model: "preview" (POST /v1/preview),
# "keyword_search" (GET /v1/objects?q=), "sheet" (/v1/searches/{id}/sheet[.pdf]), "short_id".
FEATURES = ("preview", "keyword_search", "sheet", "short_id")


class MetaOut(BaseModel):
    """What a client (the web page) needs to know about records and searches, so it copies nothing."""

    record_fields: list[str] = Field(description="record fields in display order")
    statuses: list[str]
    filter_fields: list[str]
    results: int = Field(description="objects a search returns when `k` is not sent")
    max_k: int = Field(description="most objects a search returns")
    rerank: int = Field(description="candidates given geometric verification unless `rerank` is sent")
    features: list[str] = Field(description="what this service offers beyond searching: " + ", ".join(FEATURES))
    search_timeout_s: float = Field(description="how long a client should wait for a search's answer")




def meta(results: int, max_k: int, rerank: int, search_timeout_s: float) -> MetaOut:
    return MetaOut(record_fields=list(RECORD_FIELDS), statuses=list(STATUSES), filter_fields=list(FILTER_FIELDS),
                   results=results, max_k=max_k, rerank=rerank, features=list(FEATURES),
                   search_timeout_s=search_timeout_s)
