"""Error hierarchy shared by every layer; each error carries a message a person can act on."""


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


class ModelUnavailableError(ArtefactError):
    """The requested model or its weights cannot be loaded."""


class IndexMismatchError(ArtefactError):
    """An index was opened with a different model than the one that built it."""


class CatalogueError(ArtefactError):
    """The catalogue is missing, corrupt or asked for something it does not hold."""


class ObjectNotFoundError(CatalogueError):
    """No object with the given id."""


class ManifestError(ArtefactError):
    """A bulk-ingest manifest is malformed."""
