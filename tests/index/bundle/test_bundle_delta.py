"""Delta bundles: the same state as a full export of the newer catalogue, applied only in order."""

from __future__ import annotations

import pytest

from artefact.index.bundle import BundleOrderError, export_bundle, import_bundle
from artefact.index.calibration import Calibration
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
from artefact.index.records import ObjectRecord

from bundle_helpers import answers, catalogue_rows, home_files
from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES  # type: ignore[import-not-found]


def add_later_objects(issuer, embedder) -> None:
    """New objects arrive: the full sample is ingested (only the objects not yet there are embedded)."""
    library = Library(issuer)
    try:
        ingest_manifest(library, embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
    finally:
        library.close()


def edit_records(issuer) -> None:
    """A record updated, one re-statused, one removed, and a calibration fitted."""
    library = Library(issuer)
    try:
        with library.writing():
            library.set_status("SMP-COIN-05", "recovered")
            library.remove_object("SMP-COIN-07")
            record = library.catalogue.get_object("SMP-PAINT-01")
            with library.catalogue.transaction():
                library.catalogue.upsert_object(
                    ObjectRecord(record.object_id, {**record.fields, "title": "Painting (title corrected)"}, record.extra))
            library.set_calibration(Calibration(weights=[-8.0, 10.0], uses_inliers=True, strong=0.9, possible=0.5,
                                                verified_weights=[-2.0, 0.0, 1.5]))
    finally:
        library.close()


def test_delta_after_full_equals_full_export_of_the_newer_catalogue(
    issuer, new_post, agency_key, offline_embedder, offline_model_here, tmp_path
):
    key = agency_key.private_path
    first = export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key)
    by_delta, by_full = new_post("by-delta"), new_post("by-full")
    import_bundle(by_delta, first.path, model_available=offline_model_here)

    add_later_objects(issuer, offline_embedder)
    edit_records(issuer)
    delta = export_bundle(issuer, tmp_path / "B2.bundle", since="B-0001", signing_key=key)
    full = export_bundle(issuer, tmp_path / "B3.bundle", signing_key=key)
    assert delta.manifest.kind == "delta" and delta.manifest.base_bundle_id == "B-0001"
    rows = delta.delta_rows or {}
    # 3 new objects, 1 re-statused, 1 edited (the removed one travels as a key without a row); new photos only
    assert rows["objects"] == 5 and rows["images"] == 4
    assert delta.file_bytes < full.file_bytes / 4

    import_bundle(by_delta, delta.path)
    import_bundle(by_full, full.path, model_available=offline_model_here)
    want = catalogue_rows(issuer)
    assert catalogue_rows(by_delta) == want
    assert catalogue_rows(by_full) == want
    lib_delta, lib_full, lib_issuer = Library(by_delta), Library(by_full), Library(issuer)
    try:
        assert lib_delta.check() == []
        assert lib_delta.stats()["bundle"]["bundle_id"] == "B-0002"
        assert lib_delta.stats()["bundle"]["base_bundle_id"] == "B-0001"
        expected = answers(lib_issuer, offline_embedder)
        assert answers(lib_delta, offline_embedder) == expected
        assert answers(lib_full, offline_embedder) == expected
        statuses = {oid: status for _, _, matches in expected for oid, status, *_ in matches}
        assert "SMP-COIN-07" not in statuses and statuses.get("SMP-COIN-05") in (None, "recovered")
    finally:
        for lib in (lib_delta, lib_full, lib_issuer):
            lib.close()


def test_deltas_apply_only_in_order(issuer, post, agency_key, offline_embedder, offline_model_here, tmp_path):
    key = agency_key.private_path
    first = export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key)
    edit_records(issuer)
    second = export_bundle(issuer, tmp_path / "B2.bundle", since="B-0001", signing_key=key)
    add_later_objects(issuer, offline_embedder)
    third = export_bundle(issuer, tmp_path / "B3.bundle", since="B-0002", signing_key=key)

    before = home_files(post)
    with pytest.raises(BundleOrderError, match="holds no bundle yet: import a full bundle first"):
        import_bundle(post, second.path)
    assert home_files(post) == before

    import_bundle(post, first.path, model_available=offline_model_here)
    before = home_files(post)
    with pytest.raises(BundleOrderError, match="made on bundle B-0002, but this home holds bundle B-0001: "
                                               "import bundle B-0002 first"):
        import_bundle(post, third.path)
    assert home_files(post) == before

    import_bundle(post, second.path)
    import_bundle(post, third.path)
    assert catalogue_rows(post) == catalogue_rows(issuer)
    before = home_files(post)
    with pytest.raises(BundleOrderError, match="already imported"):
        import_bundle(post, third.path)
    with pytest.raises(BundleOrderError, match="newer than delta B-0002"):
        import_bundle(post, second.path)
    assert home_files(post) == before
    # Only the current catalogue version and the previous one are kept.
    assert len(list((post / "catalogue-versions").iterdir())) == 2


def test_older_full_bundle_is_refused_unless_asked(issuer, post, agency_key, offline_embedder,
                                                   offline_model_here, tmp_path):
    key = agency_key.private_path
    old = export_bundle(issuer, tmp_path / "old.bundle", signing_key=key)
    edit_records(issuer)
    new = export_bundle(issuer, tmp_path / "new.bundle", signing_key=key)
    import_bundle(post, new.path, model_available=offline_model_here)
    before = home_files(post)
    with pytest.raises(BundleOrderError, match="older than the catalogue this home holds .bundle B-0002.*--allow-older"):
        import_bundle(post, old.path, model_available=offline_model_here)
    assert home_files(post) == before
    import_bundle(post, old.path, allow_older=True, model_available=offline_model_here)
    with Library(post) as library:
        assert library.stats()["bundle"]["bundle_id"] == "B-0001"
        assert library.catalogue.get_object("SMP-COIN-07").object_id == "SMP-COIN-07"  # back, on purpose


def test_delta_refused_after_local_changes(issuer, post, agency_key, offline_model_here, tmp_path):
    key = agency_key.private_path
    import_bundle(post, export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key).path,
                  model_available=offline_model_here)
    edit_records(issuer)
    delta = export_bundle(issuer, tmp_path / "B2.bundle", since="B-0001", signing_key=key)
    with Library(post) as library, library.writing():
        library.set_status("SMP-COIN-01", "recovered", actor="post officer")
    before = home_files(post)
    with pytest.raises(BundleOrderError, match="changed here after bundle B-0001 was imported.*full bundle"):
        import_bundle(post, delta.path)
    assert home_files(post) == before
