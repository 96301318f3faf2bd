"""Error hierarchy: the base every layer shares, and the errors of photos and models; messages a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class ArtefactError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageError(ArtefactError):
    """A photo could not be used."""


class ImageDecodeError(ImageError):
    """The bytes are not a readable image (empty, truncated, unknown format)."""


class UnsupportedImageError(ImageDecodeError):
    """The bytes are not in any image format the loader reads (decided by content, not name)."""


class ImageTooLargeError(ImageError):
    """The image (file size or pixel count) exceeds the configured limit."""


class ImageAspectError(ImageError):
    """The image's proportions are beyond any photograph's (a thin strip): refused before decoding."""


class ModelUnavailableError(ArtefactError):
    """The requested model or its weights cannot be loaded."""


# transitional: remove once api/ imports from index.errors
# The index layer's errors moved to artefact.index.errors. Importing them here at module
# level would make embed import index (and fail when index.errors is imported first), so
# old imports are served lazily (PEP 562) until every caller imports from index.errors.
_MOVED_TO_INDEX = ("IndexMismatchError", "CatalogueError", "ObjectNotFoundError", "ManifestError")

if TYPE_CHECKING:
    from artefact.index.errors import CatalogueError as CatalogueError
    from artefact.index.errors import IndexMismatchError as IndexMismatchError
    from artefact.index.errors import ManifestError as ManifestError
    from artefact.index.errors import ObjectNotFoundError as ObjectNotFoundError


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_INDEX:
        from artefact.index import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
