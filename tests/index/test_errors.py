"""The index layer's errors: ArtefactErrors (so every interface reports them), catalogue errors nested."""

from __future__ import annotations

import pytest

from artefact.embed.errors import ArtefactError, ImageError, ModelUnavailableError
from artefact.index.errors import CatalogueError, IndexMismatchError, ManifestError, ObjectNotFoundError


@pytest.mark.parametrize("error", [IndexMismatchError, CatalogueError, ObjectNotFoundError, ManifestError])
def test_index_errors_are_artefact_errors_of_their_own(error):
    assert issubclass(error, ArtefactError)
    assert not issubclass(error, (ImageError, ModelUnavailableError))


def test_a_missing_object_is_a_catalogue_error():
    # Callers that handle CatalogueError (e.g. as a 400) must see 404's subclass first.
    assert issubclass(ObjectNotFoundError, CatalogueError)
    assert not issubclass(IndexMismatchError, CatalogueError) and not issubclass(ManifestError, CatalogueError)
