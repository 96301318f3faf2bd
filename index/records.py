"""Object records: the Object ID fields plus the case fields this domain needs."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from artefact.index.errors import RecordError

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


# -- the rules for ids and values: manifests, the catalogue's writes and the HTTP schemas all use these --
MAX_ID_LENGTH = 200
MAX_FIELD_LENGTH = 10_000  # a long description fits; a value the size of a file does not
MAX_EXTRA_CHARS = 100_000  # the other columns of a row, as JSON
# Never in an id: controls, invisible format characters (bidi overrides such as U+202E that make
# "exe.jpg" read "gpj.exe", zero-width spaces, BOMs), lone surrogates, line/paragraph separators.
_ID_FORBIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Values are text: newlines and tabs are fine, other control characters (NUL, BEL, ESC ...) are not.
_VALUE_ALLOWED_CONTROLS = "\t\n\r"


def _as_text(value: object, what: str) -> str:
    """Strings as they are; whole numbers (JSON manifests) in decimal; anything else refused, never str()'d."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = "null" if value is None else type(value).__name__
    raise RecordError(f"{what} must be a string, not {kind}")


def _char_name(c: str) -> str:
    return f"U+{ord(c):04X}" + (f" {unicodedata.name(c)}" if unicodedata.name(c, "") else "")


def validate_object_id(value: object) -> str:
    """An object id as stored: 1-200 characters, no control or invisible format characters, not . or ..

    Raises:
        RecordError: with the reason, in words (the id itself is not echoed back whole).
    """
    oid = _as_text(value, "the id").strip()
    if not oid:
        raise RecordError("the id is empty")
    if len(oid) > MAX_ID_LENGTH:
        raise RecordError(f"the id has {len(oid)} characters, the limit is {MAX_ID_LENGTH}")
    if oid in (".", ".."):
        raise RecordError(f"the id cannot be {oid!r}")
    bad = next((c for c in oid if unicodedata.category(c) in _ID_FORBIDDEN), None)
    if bad is not None:
        raise RecordError(f"the id {oid[:40]!r} holds a control or invisible character ({_char_name(bad)})")
    return oid


def validate_field(name: str, value: object) -> str:
    """One field value as stored ('' for null): text of at most MAX_FIELD_LENGTH characters."""
    if value is None:
        return ""
    text = _as_text(value, f"field {name!r}").strip()
    if len(text) > MAX_FIELD_LENGTH:
        raise RecordError(f"field {name!r} has {len(text)} characters, the limit is {MAX_FIELD_LENGTH}")
    bad = next((c for c in text if unicodedata.category(c) == "Cc" and c not in _VALUE_ALLOWED_CONTROLS), None)
    if bad is not None:
        raise RecordError(f"field {name!r} holds a control character ({_char_name(bad)})")
    return text


def validate_fields(values: Mapping[str, object]) -> dict[str, str]:
    """Record fields as stored: each value checked, empty ones left out (names are the caller's to check)."""
    out = {name: validate_field(name, v) for name, v in values.items()}
    return {name: v for name, v in out.items() if v}


def validate_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Other columns, kept as given (JSON values) up to MAX_EXTRA_CHARS in all."""
    size = len(json.dumps(extra, ensure_ascii=False, default=str))
    if size > MAX_EXTRA_CHARS:
        raise RecordError(f"the other fields hold {size} characters as JSON, the limit is {MAX_EXTRA_CHARS}")
    return dict(extra)


def record_from_mapping(data: Mapping[str, Any], id_keys: Collection[str] = ("id",),
                        ignore: Collection[str] = ()) -> "ObjectRecord":
    """An `ObjectRecord` from one manifest row or request body: the id under the first of `id_keys`
    present, the known fields, and everything else (but `ignore`d keys) as extra.

    Raises:
        RecordError: no id, or an id or value breaking the rules.
    """
    raw_id = next((data[k] for k in id_keys if k in data and data[k] != ""), None)
    if raw_id is None:
        raise RecordError(f"the record has no {' or '.join(repr(k) for k in id_keys)}")
    oid = validate_object_id(raw_id)
    fields = validate_fields({f: data[f] for f in RECORD_FIELDS if f in data})
    skip = set(RECORD_FIELDS) | set(id_keys) | set(ignore)
    extra = validate_extra({k: v for k, v in data.items() if k and k not in skip and v not in (None, "")})
    return ObjectRecord(oid, fields, extra)


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
