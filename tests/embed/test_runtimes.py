"""Runtimes: the tiny CLIP model exported to ONNX Runtime / OpenVINO agrees with torch, is cached and pinned,
falls back when a runtime is missing, and an index refuses a variant whose vectors drift."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from artefact.embed.loader import embedder_for, load_embedder
from artefact.embed.models import LoadOptions
from artefact.embed.preprocess import prepare
from artefact.embed.runtimes import registry
from artefact.embed.runtimes.export import export_folder, pin_path
from artefact.embed.runtimes.registry import RuntimeEntry, SessionEmbedder, register_runtime
from artefact.embed.runtimes.variants import (
    AGREEMENT_MIN_COSINE,
    AUTO,
    DEFAULTS,
    EXTRA_KEY,
    ONNX,
    TORCH_FP32,
    Variant,
    agreement_problem,
    default_threads,
    record_of,
    resolve,
)
from artefact.index.errors import IndexMismatchError
from artefact.index.library import Library

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runtime_options(tiny_options: LoadOptions, tmp_path_factory) -> LoadOptions:
    """The tiny model's options with a model cache of this module's own."""
    return replace(tiny_options, cache_dir=tmp_path_factory.mktemp("runtime_cache"))


@pytest.fixture(scope="module")
def onnx_fp32(tiny_spec, runtime_options):
    return load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="fp32"))


def _inputs(embedder, photo_image) -> list[np.ndarray]:
    return [prepare(photo_image(n), embedder.preprocess) for n in PHOTOS]


def test_onnx_export_agrees_with_torch_on_real_photos(onnx_fp32, tiny_embedder, photo_image):
    assert isinstance(onnx_fp32, SessionEmbedder)
    arrays = _inputs(tiny_embedder, photo_image)
    a, b = tiny_embedder.embed_prepared(arrays), onnx_fp32.embed_prepared(arrays)
    assert b.shape == a.shape and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-5)
    assert (a * b).sum(axis=1).min() >= AGREEMENT_MIN_COSINE
    record = record_of(onnx_fp32.description)
    assert record.variant == Variant(ONNX, "fp32")
    assert record.agreement >= AGREEMENT_MIN_COSINE
    # identity is the weights: the same index accepts torch and the export
    assert onnx_fp32.description.identity() == tiny_embedder.description.identity()


def test_export_is_cached_and_pinned_by_checksum(onnx_fp32, tiny_spec, runtime_options, caplog):
    folder = export_folder(runtime_options, onnx_fp32.description)
    model_file = folder / "onnx-fp32.onnx"
    pin = json.loads(pin_path(folder, "onnx-fp32").read_text())
    assert pin["sha256"] == record_of(onnx_fp32.description).sha256
    assert pin["agreement"]["probe_photos"] >= 8
    before = model_file.stat().st_mtime_ns

    again = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="fp32"))
    assert model_file.stat().st_mtime_ns == before  # reused, not exported again
    assert again.description == onnx_fp32.description

    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")  # damaged in the cache
    with caplog.at_level(logging.WARNING):
        remade = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="fp32"))
    assert "does not match its pinned checksum" in caplog.text
    assert record_of(remade.description).sha256 == pin["sha256"]  # the same export, made again


def test_int8_is_measured_and_recorded(tiny_spec, runtime_options, tiny_embedder, photo_image):
    int8 = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="int8"))
    record = record_of(int8.description)
    assert record.variant == Variant(ONNX, "int8")
    arrays = _inputs(tiny_embedder, photo_image)
    cos = (tiny_embedder.embed_prepared(arrays) * int8.embed_prepared(arrays)).sum(axis=1)
    assert 0.5 < record.agreement < 1.0  # measured, and int8 is not bit-exact
    assert cos.min() > 0.5


def test_openvino_fp32_agrees_with_torch(tiny_spec, runtime_options, tiny_embedder, photo_image):
    pytest.importorskip("openvino")
    ov = load_embedder(tiny_spec, replace(runtime_options, runtime="openvino", precision="fp32"))
    arrays = _inputs(tiny_embedder, photo_image)
    assert (tiny_embedder.embed_prepared(arrays) * ov.embed_prepared(arrays)).sum(axis=1).min() >= AGREEMENT_MIN_COSINE
    assert record_of(ov.description).variant.runtime == "openvino"


def test_missing_runtime_falls_back_to_torch_with_a_log_line(tiny_spec, runtime_options, caplog, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, ONNX, RuntimeEntry("no.such:build", ("artefact_no_such_runtime_pkg",)))
    with caplog.at_level(logging.WARNING):
        e = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="fp32"))
    assert not isinstance(e, SessionEmbedder)
    assert "artefact_no_such_runtime_pkg" in caplog.text and "PyTorch" in caplog.text
    assert record_of(e.description).variant == TORCH_FP32


def test_register_runtime_adds_a_runtime(tiny_spec, runtime_options, monkeypatch):
    calls = []

    def fake_build(embedder, precision, ctx):
        calls.append((precision, ctx.folder))
        raise registry.ModelUnavailableError("fake runtime cannot build")

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_runtime(ONNX, RuntimeEntry(fake_build, ()))
    with pytest.raises(registry.ModelUnavailableError, match="fake runtime"):
        load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="fp32"))  # named: an error
    fallback = load_embedder(tiny_spec, replace(runtime_options, runtime=AUTO, precision="fp32"))  # auto: torch
    assert not isinstance(fallback, SessionEmbedder) and len(calls) == 2


def test_auto_int8_below_its_floor_runs_fp32_in_the_same_runtime(tiny_spec, runtime_options, monkeypatch, caplog):
    real = registry._builder(ONNX)

    def drifting_int8(embedder, precision, ctx):
        session, pinned = real(embedder, precision, ctx)
        if precision == "int8":  # as if real weights quantized badly
            pinned = replace(pinned, meta={**pinned.meta, "agreement": {"min_cosine": 0.5}})
        return session, pinned

    monkeypatch.setitem(registry._REGISTRY, ONNX, RuntimeEntry(drifting_int8, ()))
    monkeypatch.setitem(DEFAULTS, "open_clip", Variant(ONNX, "int8"))
    with caplog.at_level(logging.WARNING):
        e = load_embedder(tiny_spec, replace(runtime_options, runtime=AUTO, precision=AUTO))
    assert record_of(e.description).variant == Variant(ONNX, "fp32")
    assert "0.5000" in caplog.text
    named = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="int8"))  # asked for: kept
    assert record_of(named.description).variant == Variant(ONNX, "int8")


def _with_record(description, variant: Variant, agreement: float, sha: str = "x" * 64):
    return replace(description, extra={**description.extra, EXTRA_KEY: {
        "name": variant.runtime, "precision": variant.precision, "sha256": sha, "agreement_min_cosine": agreement}})


def test_agreement_rule(tiny_embedder):
    d = tiny_embedder.description
    good, bad = _with_record(d, Variant(ONNX, "int8"), 0.999), _with_record(d, Variant(ONNX, "int8"), 0.9)
    assert agreement_problem(d, d) is None
    assert agreement_problem(d, good) is None  # torch index, agreeing export
    assert agreement_problem(bad, bad) is None  # the very variant that built it
    assert "0.9000" in (agreement_problem(d, bad) or "")
    assert agreement_problem(bad, d) is not None  # an index built by a drifting variant
    # the same variant with another file (another calibration) must agree too
    assert agreement_problem(bad, _with_record(d, Variant(ONNX, "int8"), 0.9, sha="y" * 64)) is not None


def test_index_refuses_a_drifting_runtime_and_accepts_an_agreeing_one(tmp_path, tiny_embedder, onnx_fp32):
    with Library(tmp_path / "home") as library:
        library.bind_model(tiny_embedder.description)
        library.check_model(onnx_fp32.description)  # measured agreement above the threshold
        drifting = _with_record(tiny_embedder.description, Variant("openvino", "int8"), 0.95)
        with pytest.raises(IndexMismatchError, match="openvino/int8.*0.9500"):
            library.check_model(drifting)


def test_auto_follows_the_index_variant(tiny_spec, runtime_options, onnx_fp32, tiny_embedder, monkeypatch):
    e = embedder_for(onnx_fp32.description, None, replace(runtime_options, runtime=AUTO, precision=AUTO))
    assert record_of(e.description).variant == Variant(ONNX, "fp32")
    # an index PyTorch built (before runtimes): the default runtime, in fp32, never an int8 that drifts
    monkeypatch.setitem(DEFAULTS, "open_clip", Variant(ONNX, "int8"))
    legacy = embedder_for(tiny_embedder.description, None, replace(runtime_options, runtime=AUTO, precision=AUTO))
    assert record_of(legacy.description).variant == Variant(ONNX, "fp32")


def test_auto_moves_an_fp32_index_to_the_default_runtime_and_keeps_int8(tiny_spec, runtime_options, onnx_fp32,
                                                                        monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setitem(DEFAULTS, "open_clip", Variant("openvino", "int8"))
    auto = replace(runtime_options, runtime=AUTO, precision=AUTO)
    # an index an earlier default (ONNX fp32) built: today's default runtime, fp32, vectors agreeing
    moved = embedder_for(onnx_fp32.description, None, auto)
    assert record_of(moved.description).variant == Variant("openvino", "fp32")
    # an int8 index: only its own kind of vectors meets it
    int8 = load_embedder(tiny_spec, replace(runtime_options, runtime=ONNX, precision="int8"))
    kept = embedder_for(int8.description, None, auto)
    assert record_of(kept.description).variant == Variant(ONNX, "int8")


def test_openvino_keeps_its_compiled_model_and_survives_a_damaged_one(tiny_spec, runtime_options, tiny_embedder,
                                                                     photo_image):
    pytest.importorskip("openvino")
    from artefact.embed.runtimes.export import export_folder
    from artefact.embed.runtimes.openvino_runtime import COMPILED_CACHE_DIR

    options = replace(runtime_options, runtime="openvino", precision="fp32")
    load_embedder(tiny_spec, options)
    cache = export_folder(options, tiny_embedder.description) / COMPILED_CACHE_DIR
    blobs = [p for p in cache.iterdir() if p.is_file()]
    assert blobs, "OpenVINO wrote no compiled model: every process start would compile again"
    for blob in blobs:
        blob.write_bytes(b"not a compiled model" * 100)
    again = load_embedder(tiny_spec, options)
    arrays = _inputs(tiny_embedder, photo_image)
    assert (tiny_embedder.embed_prepared(arrays) * again.embed_prepared(arrays)).sum(axis=1).min() >= AGREEMENT_MIN_COSINE


def test_resolve_defaults():
    assert resolve("efficientnet_lite0", AUTO, AUTO) == DEFAULTS["efficientnet_lite0"]
    assert resolve("open_clip", AUTO, AUTO) == DEFAULTS["open_clip"]
    other = "openvino" if DEFAULTS["open_clip"].runtime != "openvino" else ONNX
    assert resolve("open_clip", other, AUTO) == Variant(other, "fp32")  # another runtime: fp32 unless asked
    assert resolve("open_clip", "torch", "fp32") == TORCH_FP32
    with pytest.raises(ValueError):
        resolve("open_clip", "tensorrt", AUTO)
    assert default_threads(2) == 2 and default_threads(16) == 8 and default_threads(1) == 1  # a search: every core
    assert default_threads(2, bulk=True) == 1 and default_threads(16, bulk=True) == 8  # ingest: half, for decoders
