"""Keyword search travels with bundles: a full bundle's catalogue holds its FTS5 index, and a delta's rows
(new, edited, removed records) reach the post's index through the catalogue's triggers."""

from __future__ import annotations

from artefact.index.bundle import export_bundle, import_bundle
from artefact.index.library import Library
from artefact.index.records import ObjectRecord


def _found(home, words: str) -> list[str]:
    library = Library(home)
    try:
        return [r.object_id for r in library.catalogue.find_objects(words)]
    finally:
        library.close()


def test_words_find_the_same_records_at_a_post_after_full_and_delta_bundles(
        issuer, new_post, agency_key, offline_model_here, tmp_path) -> None:
    key = agency_key.private_path
    first = export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key)
    post = new_post("post")
    import_bundle(post, first.path, model_available=offline_model_here)
    assert _found(post, "starry nig") == ["SMP-PAINT-01"]
    assert _found(post, "reproduction") == ["SMP-PAINT-01"]
    assert sorted(_found(post, "turkiye")) == ["SMP-COIN-04", "SMP-COIN-10", "SMP-COIN-16"]

    library = Library(issuer)
    try:
        with library.writing():
            record = library.catalogue.get_object("SMP-PAINT-01")
            with library.catalogue.transaction():
                library.catalogue.upsert_object(ObjectRecord(
                    record.object_id, {**record.fields, "title": "Nuit étoilée (titre corrigé)"}, record.extra))
            library.remove_object("SMP-COIN-10")
    finally:
        library.close()
    delta = export_bundle(issuer, tmp_path / "B2.bundle", since="B-0001", signing_key=key)
    assert delta.manifest.kind == "delta"
    import_bundle(post, delta.path)
    assert _found(post, "nuit etoilee") == ["SMP-PAINT-01"]
    assert _found(post, "reproduction") == []  # the old title's word left the index with the edit
    assert sorted(_found(post, "turkiye")) == ["SMP-COIN-04", "SMP-COIN-16"]
    assert _found(post, "nuit etoilee") == _found(issuer, "nuit etoilee")
