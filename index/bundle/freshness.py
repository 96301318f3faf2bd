"""How current a post's catalogue is: the bundle it came from, its date, and a warning once it is too old."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from artefact.embed.fileio import utc_now


@dataclass(frozen=True)
class Freshness:
    """The catalogue's origin as a post sees it; `stale` once older than the configured age."""

    bundle_id: str
    kind: str
    created: str
    issuer: str
    imported_at: str
    age_days: float
    max_age_days: float | None
    signed_by: str | None

    @property
    def as_of(self) -> str:
        return self.created[:10]

    @property
    def stale(self) -> bool:
        return self.max_age_days is not None and self.age_days > self.max_age_days

    def line(self) -> str:
        """"catalogue as of 2026-11-30, bundle B-0042"."""
        return f"catalogue as of {self.as_of}, bundle {self.bundle_id}"

    def warning(self) -> str | None:
        if not self.stale:
            return None
        return (
            f"the catalogue is {self.age_days:.0f} days old (bundle {self.bundle_id}, as of {self.as_of}), "
            f"older than the {self.max_age_days:g} days allowed: objects stolen since are not in it; "
            "import a newer bundle from the agency"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle_id": self.bundle_id,
            "kind": self.kind,
            "as_of": self.created,
            "issuer": self.issuer,
            "imported_at": self.imported_at,
            "signed_by": self.signed_by,
            "age_days": round(self.age_days, 1),
            "max_age_days": self.max_age_days,
            "stale": self.stale,
            "summary": self.line(),
            "warning": self.warning(),
        }


def freshness(record: Mapping[str, Any] | None, max_age_days: float | None = None,
              now: datetime | None = None) -> Freshness | None:
    """Freshness of a catalogue from its bundle record (`Library.stats()["bundle"]`); None: not from a bundle."""
    if not record:
        return None
    created = str(record.get("created", ""))
    try:
        age = ((now or utc_now()) - datetime.fromisoformat(created)).total_seconds() / 86400
    except ValueError:
        age = float("inf")  # an unreadable date is treated as too old, never as fresh
    return Freshness(
        bundle_id=str(record.get("bundle_id", "?")),
        kind=str(record.get("kind", "")),
        created=created,
        issuer=str(record.get("issuer", "")),
        imported_at=str(record.get("imported_at", "")),
        age_days=max(0.0, age),
        max_age_days=max_age_days,
        signed_by=record.get("signed_by"),
    )
