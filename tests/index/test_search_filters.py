"""SearchFilters.parse: the one reading of filter values that the CLI and the HTTP API share."""

from __future__ import annotations

import pytest

from artefact.index.catalogue import SearchFilters
from artefact.index.errors import CatalogueError


def test_values_are_split_on_commas_and_trimmed() -> None:
    f = SearchFilters.parse({"country": ["Italy, Greece", " Türkiye "], "status": ["looted"], "source": [""]})
    assert f == SearchFilters(status=("looted",), country=("Italy", "Greece", "Türkiye"))
    assert not f.include_recovered


def test_no_values_means_no_filter() -> None:
    assert SearchFilters.parse({}) == SearchFilters()
    assert SearchFilters.parse({"status": [""], "object_type": [" , "]}, include_recovered=True) == SearchFilters(
        include_recovered=True)


def test_an_unknown_status_is_refused_with_the_known_ones() -> None:
    with pytest.raises(CatalogueError, match="unknown status lost: use one of stolen, looted, missing, recovered"):
        SearchFilters.parse({"status": ["stolen,lost"]})
    assert SearchFilters.parse({"status": ["RECOVERED"]}).status == ("RECOVERED",)  # case does not matter


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(CatalogueError, match="unknown filter colour"):
        SearchFilters.parse({"colour": ["red"]})
