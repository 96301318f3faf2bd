"""Object records: the Object ID fields plus the case fields this domain needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Object ID standard (INTERPOL, ICOM) descriptive fields, in display order.
OBJECT_ID_FIELDS = (
    "object_type",
    "title",
    "materials",
    "techniques",
    "measurements",
    "inscriptions",
    "distinguishing_features",
    "subject",
    "date_period",
    "maker",
    "description",
)
# Case fields: where the report comes from and whom to contact.
CASE_FIELDS = (
    "status",
    "source",
    "country",
    "date_reported",
    "case_reference",
    "contact",
)
RECORD_FIELDS = OBJECT_ID_FIELDS + CASE_FIELDS

STATUSES = ("stolen", "looted", "missing", "recovered")
DEFAULT_STATUS = "stolen"
# Filters a search may use; each names a record field.
FILTER_FIELDS = ("status", "object_type", "country", "source")


@dataclass
class ObjectRecord:
    """One catalogued object; `object_id` is the inventory / case id from the manifest."""

    object_id: str
    fields: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.fields.get("status") or DEFAULT_STATUS

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.object_id}
        d.update({k: self.fields.get(k, "") for k in RECORD_FIELDS})
        if self.extra:
            d["extra"] = self.extra
        return d


@dataclass(frozen=True)
class ImageRecord:
    """A catalogue photo; `image_id` is also its vector id in the FAISS index."""

    image_id: int
    object_id: str
    path: str
    sha256: str
    size_bytes: int
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
        }
