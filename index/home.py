"""Home: the one owner of every file and folder name inside an installation's home folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    """Paths inside one home folder (`--home` / `ARTEFACT_HOME`).

    Every other module asks this object for a path instead of spelling a file name,
    so a name is written once and a new file is added here first.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- engine data (index layer) -------------------------------------------
    @property
    def catalogue(self) -> Path:
        return self.root / "catalogue.sqlite"

    @property
    def vectors(self) -> Path:
        return self.root / "vectors.faiss"

    @property
    def vectors_manifest(self) -> Path:
        return self.vectors.with_suffix(".json")

    @property
    def record_filters(self) -> Path:
        """Filter fields (status, type, country, source) by photo id, beside the catalogue."""
        return self.root / "filters.npz"

    @property
    def vector_store_choice(self) -> Path:
        """Which vector store the home uses (FAISS files or a Milvus collection), recorded on first use."""
        return self.root / "vector-store.json"

    @property
    def features(self) -> Path:
        """Local features of the photos: append-only shard files and their offset table."""
        return self.root / "features"

    @property
    def catalogue_versions(self) -> Path:
        """Imported catalogues, one folder each (catalogue + its vectors); `catalogue` links to one."""
        return self.root / "catalogue-versions"

    def current_catalogue(self) -> Path:
        """The catalogue file in use: `catalogue.sqlite`, or the imported version it links to.

        Its vector index lies beside it, so a catalogue and its vectors always change together.
        """
        if self.catalogue.is_symlink():
            return Path(os.path.realpath(self.catalogue))
        return self.catalogue

    # -- bundles and their keys -----------------------------------------------
    @property
    def installation_id(self) -> Path:
        return self.root / "installation-id"

    @property
    def bundles_issued(self) -> Path:
        return self.root / "bundles-issued"

    @property
    def signing_keys(self) -> Path:
        return self.root / "signing-keys"

    @property
    def trusted_keys(self) -> Path:
        return self.root / "trusted-keys"

    @property
    def write_lock(self) -> Path:
        return self.root / ".write.lock"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    # -- service data (api layer) --------------------------------------------
    @property
    def access(self) -> Path:
        return self.root / "access.sqlite"

    @property
    def audit(self) -> Path:
        return self.root / "audit.sqlite"

    @property
    def audit_photos(self) -> Path:
        return self.root / "audit-photos"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    def has_catalogue(self) -> bool:
        return self.catalogue.is_file()
