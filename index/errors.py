"""Errors of the index layer (catalogue, vectors, manifests); all are `ArtefactError`s, as embed's are."""

from artefact.embed.errors import ArtefactError


class IndexMismatchError(ArtefactError):
    """An index was opened with a different model than the one that built it."""


class CatalogueError(ArtefactError):
    """The catalogue is missing, corrupt or asked for something it does not hold."""


class ObjectNotFoundError(CatalogueError):
    """No object with the given id."""


class IndexRebuildingError(CatalogueError):
    """The vector index differed from the catalogue and is being rebuilt from it; try again shortly."""


class ReadOnlyHomeError(CatalogueError):
    """A search server's home (its vectors read-only from a shared Milvus collection) was asked to write."""


class RecordError(CatalogueError):
    """An object record breaks the rules for ids or field values (see index/records.py)."""


class ManifestError(ArtefactError):
    """A bulk-ingest manifest is malformed."""


class ImageRootError(ArtefactError):
    """The folder or object-store URI the manifest's photos live under cannot be opened."""


class ClusterError(ArtefactError):
    """The Ray cluster for a distributed ingest cannot be reached, or its workers cannot load the model."""
