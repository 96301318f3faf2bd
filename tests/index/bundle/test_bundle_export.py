"""Full bundles: export from a working home, import into an empty post, and get the same answers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from datetime import timedelta

import pytest

from artefact.embed.fileio import utc_now
from artefact.index.bundle import BundleModelError, export_bundle, freshness, import_bundle, read_bundle
from artefact.index.bundle.manifest import CATALOGUE, MODEL, VECTORS
from artefact.index.bundle.signing import trusted_keys
from artefact.index.home import Home
from artefact.index.stores import files as store_files
from artefact.index.library import Library

from bundle_helpers import answers, catalogue_rows, home_files, members


def test_full_bundle_gives_the_post_the_same_answers(issuer, post, agency_key, offline_embedder,
                                                     offline_model_here, tmp_path):
    out = tmp_path / "full.bundle"
    report = export_bundle(issuer, out, signing_key=agency_key.private_path)
    m = report.manifest
    assert m.kind == "full" and m.bundle_id == "B-0001" and report.signed_by == agency_key.key_id
    roles = {p.role for p in m.parts}
    assert {CATALOGUE, VECTORS, MODEL} <= roles
    paths = {p.path for p in m.parts} | {lk.path for lk in m.links}
    assert "models/runtimes/model.onnx" in paths
    assert "models/models--example--tiny/snapshots/0123abcd/weights.bin" in {lk.path for lk in m.links}
    assert not any("audit" in p or "access" in p or "checksums" in p or "openvino-compiled" in p for p in paths)
    counts = Library(issuer).catalogue.counts()
    assert (m.catalogue["objects"], m.catalogue["images"]) == (counts["objects"], counts["images"]) == (24, 29)
    assert all(i.mtime == 0 and i.uid == 0 for i in members(out))

    verified = read_bundle(out, trusted_keys(Home(post)))
    assert verified.signed_by == agency_key.key_id and verified.manifest.bundle_id == "B-0001"

    before_local = {k: v for k, v in home_files(post).items() if k.startswith(("audit", "access", "trusted"))}
    imported = import_bundle(post, out, model_available=offline_model_here)  # its weights come with the program
    assert imported.model_files == 3 and not imported.model_changed
    after = home_files(post)
    assert {k: after[k] for k in before_local} == before_local  # audit log and keys untouched
    assert Home(post).catalogue.is_symlink()
    # Model files and the cache's link arrived; the link still resolves to the blob.
    weights = Home(post).models / "models--example--tiny/snapshots/0123abcd/weights.bin"
    assert weights.is_symlink() and weights.read_bytes() == (
        Home(issuer).models / "models--example--tiny/blobs/abc123").read_bytes()

    source, target = Library(issuer), Library(post)
    try:
        assert catalogue_rows(post) == catalogue_rows(issuer)
        assert target.check() == []
        expected = answers(source, offline_embedder)
        assert expected[0][2] and expected[0][2][0][0] == "SMP-COIN-18"  # the sample query finds its coin
        assert answers(target, offline_embedder) == expected
        stats = target.stats()
        assert stats["bundle"]["bundle_id"] == "B-0001" and stats["bundle"]["signed_by"] == agency_key.key_id
        fresh = freshness(stats["bundle"], max_age_days=30)
        assert fresh is not None and fresh.line() == f"catalogue as of {m.created[:10]}, bundle B-0001"
        assert not fresh.stale and fresh.warning() is None
        late = freshness(stats["bundle"], max_age_days=30, now=utc_now() + timedelta(days=45))
        assert late is not None and late.stale and "45 days old" in (late.warning() or "")
    finally:
        source.close()
        target.close()


def test_bundle_without_model_needs_the_model_at_the_post(issuer, post, agency_key, offline_embedder, tmp_path):
    out = tmp_path / "lean.bundle"
    report = export_bundle(issuer, out, without_model=True, signing_key=agency_key.private_path)
    assert not any(p.role == MODEL for p in report.manifest.parts) and not report.manifest.model_included
    assert report.manifest.weights_sha256 == offline_embedder.description.weights_sha256
    before = home_files(post)
    with pytest.raises(BundleModelError, match="does not carry its model"):
        import_bundle(post, out)
    assert home_files(post) == before
    # A post that can load the very same model takes it.
    seen = []

    def can_load(description):
        seen.append(description.label())
        return description.identity() == offline_embedder.description.identity()

    import_bundle(post, out, model_available=can_load)
    assert seen and Library(post).stats()["bundle"]["bundle_id"] == "B-0001"


def test_export_refuses_an_unknown_base_and_a_missing_catalogue(issuer, tmp_path):
    from artefact.index.bundle import BundleError, BundleOrderError

    with pytest.raises(BundleOrderError, match="was not issued from"):
        export_bundle(issuer, tmp_path / "d.bundle", since="B-0099")
    with pytest.raises(BundleError, match="no catalogue"):
        export_bundle(tmp_path / "empty-home", tmp_path / "x.bundle")
    assert not (tmp_path / "d.bundle").exists() and not (tmp_path / "x.bundle").exists()
    # Ids are not used up by failed exports.
    assert export_bundle(issuer, tmp_path / "ok.bundle").manifest.bundle_id == "B-0001"


def test_keys_are_never_overwritten_and_private_keys_are_private(tmp_path):
    from artefact.index.bundle import SigningKeyError, create_key_pair

    pair = create_key_pair(tmp_path, "agency")
    assert os.stat(pair.private_path).st_mode & 0o777 == 0o600
    before = pair.private_path.read_bytes()
    with pytest.raises(SigningKeyError, match="never overwritten"):
        create_key_pair(tmp_path, "agency")
    assert pair.private_path.read_bytes() == before
    protected = create_key_pair(tmp_path, "locked", passphrase=b"correct horse")
    from artefact.index.bundle.signing import load_private_key

    with pytest.raises(SigningKeyError, match="passphrase"):
        load_private_key(protected.private_path)
    assert load_private_key(protected.private_path, b"correct horse") is not None
    assert json.loads(json.dumps(pair.key_id)) == pair.key_id and len(pair.key_id) == 16


def test_a_compressed_store_travels_as_built(issuer, post, agency_key, offline_embedder, offline_model_here, tmp_path):
    """An HNSW store (pinned here; large catalogues get one by size) is shipped with its graph and tuned
    parameters, not rebuilt at either end: the post holds the issuer's store files byte for byte."""
    lib = Library(issuer)
    try:
        lib.optimize("hnsw")
        built = lib.stats()["index"]
        issuer_files = {name: (Path(lib.index_path).parent / name).read_bytes()
                        for name in store_files.referenced(store_files.read_manifest(lib.index_path) or {})}
    finally:
        lib.close()
    assert built["kind"] == "hnsw" and issuer_files
    out = tmp_path / "hnsw.bundle"
    m = export_bundle(issuer, out, signing_key=agency_key.private_path).manifest
    shipped = {p.path for p in m.parts if p.role == VECTORS}
    assert set(issuer_files) <= shipped, (sorted(issuer_files), sorted(shipped))
    import_bundle(post, out, model_available=offline_model_here)
    source, target = Library(issuer), Library(post)
    try:
        arrived = store_files.read_manifest(target.index_path) or {}
        assert {n: (Path(target.index_path).parent / n).read_bytes() for n in store_files.referenced(arrived)} \
            == issuer_files
        got = target.stats()["index"]
        assert got["kind"] == "hnsw" and got.get("params") == built.get("params"), (got, built)
        assert target.check() == []
        assert answers(target, offline_embedder) == answers(source, offline_embedder)
    finally:
        source.close()
        target.close()
