"""Signed catalogue bundles for offline posts: export full or delta bundles, verify them, import them atomically."""

from artefact.index.bundle.errors import (
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleModelError,
    BundleOrderError,
    BundleSignatureError,
    SigningKeyError,
)
from artefact.index.bundle.export import ExportReport, export_bundle
from artefact.index.bundle.freshness import Freshness, freshness
from artefact.index.bundle.importer import ImportReport, import_bundle
from artefact.index.bundle.signing import create_key_pair, trusted_keys
from artefact.index.bundle.verify import VerifiedBundle, read_bundle

__all__ = [
    "BundleError", "BundleFormatError", "BundleIntegrityError", "BundleModelError", "BundleOrderError",
    "BundleSignatureError", "SigningKeyError", "ExportReport", "export_bundle", "Freshness", "freshness",
    "ImportReport", "import_bundle", "create_key_pair", "trusted_keys", "VerifiedBundle", "read_bundle",
]
