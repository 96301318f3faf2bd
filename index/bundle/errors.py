"""Errors of catalogue bundles: each says what is wrong with the bundle and what the person can do."""

from __future__ import annotations

from artefact.embed.errors import ArtefactError


class BundleError(ArtefactError):
    """A bundle cannot be made, trusted or imported."""


class BundleFormatError(BundleError):
    """The file is not a bundle this program can read (truncated, not a tar, unknown format)."""


class BundleIntegrityError(BundleError):
    """A part is missing, unexpected, or differs from the size and SHA-256 the manifest lists."""


class BundleSignatureError(BundleError):
    """The bundle is unsigned, signed by a key this home does not trust, or its signature is wrong."""


class BundleOrderError(BundleError):
    """The bundle does not follow what the home holds: older (rollback), or a delta on another bundle."""


class BundleModelError(BundleError):
    """The bundle's catalogue needs a model the receiving home does not hold."""


class SigningKeyError(BundleError):
    """A signing or trusted key file is missing, unreadable or of the wrong kind."""
