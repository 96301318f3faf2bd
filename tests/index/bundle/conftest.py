"""Bundle fixtures: an issuing home built once from the real sample catalogue, copied per test, and keys."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from artefact.index.bundle.signing import KeyPair, create_key_pair
from artefact.index.home import Home
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library

from bundle_helpers import subset_csv
from index_helpers import SAMPLE_IMAGES  # type: ignore[import-not-found]

# Objects the first catalogue lacks; they arrive later, as an update.
LATER = {"SMP-COIN-20", "SMP-COIN-21", "SMP-COIN-22"}


def fake_model_cache(models: Path) -> None:
    """A Hugging Face style cache: a blob, a snapshot link to it, a ref; plus an exported runtime."""
    repo = models / "models--example--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "abc123").write_bytes(os.urandom(4096))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "weights.bin").symlink_to("../../blobs/abc123")
    (models / "runtimes").mkdir()
    (models / "runtimes" / "model.onnx").write_bytes(os.urandom(2048))
    (models / "checksums.json").write_text("{}")  # local bookkeeping: must not travel
    compiled = models / "runtimes" / "openvino-compiled"  # made for the issuer's CPU: must not travel
    compiled.mkdir()
    (compiled / "1234567890.blob").write_bytes(os.urandom(1024))


@pytest.fixture(scope="session")
def built_issuer(tmp_path_factory: pytest.TempPathFactory, offline_embedder) -> Path:
    """The sample catalogue (less LATER) indexed with the offline model and SIFT features, built once."""
    root = tmp_path_factory.mktemp("issuer-built")
    home = root / "home"
    library = Library(home)
    manifest = subset_csv(root / "first.csv", LATER)
    ingest_manifest(library, offline_embedder, manifest, SAMPLE_IMAGES, workers=0, progress=False)
    library.close()
    fake_model_cache(Home(home).models)
    # Service-side files of the issuing home: they must never travel in a bundle.
    (home / "audit.sqlite").write_bytes(b"issuer audit log")
    (home / "access.sqlite").write_bytes(b"issuer api keys")
    return home


@pytest.fixture
def issuer(built_issuer: Path, tmp_path: Path) -> Path:
    """A private copy of the issuing home (tests change it)."""
    home = tmp_path / "issuer"
    shutil.copytree(built_issuer, home, symlinks=True)
    return home


@pytest.fixture(scope="session")
def offline_model_here(offline_embedder):
    """What the CLI passes as `model_available`: can this post load exactly that model?"""
    return lambda description: description.identity() == offline_embedder.description.identity()


@pytest.fixture(scope="session")
def agency_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return create_key_pair(tmp_path_factory.mktemp("keys"), "agency")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return create_key_pair(tmp_path_factory.mktemp("other-keys"), "stranger")


@pytest.fixture
def new_post(tmp_path: Path, agency_key: KeyPair):
    """Factory: an empty border-post home that trusts the agency's key and has its own audit log and keys."""

    def make(name: str = "post") -> Path:
        home = tmp_path / name
        trusted = Home(home).trusted_keys
        trusted.mkdir(parents=True)
        shutil.copy(agency_key.public_path, trusted / "agency.pub")
        (home / "audit.sqlite").write_bytes(b"post audit log")
        (home / "access.sqlite").write_bytes(b"post api keys")
        return home

    return make


@pytest.fixture
def post(new_post) -> Path:
    return new_post("post")
