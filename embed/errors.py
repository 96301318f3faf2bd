"""Error hierarchy: the base every layer shares, and the errors of photos and models; messages a person can act on."""

from __future__ import annotations


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
