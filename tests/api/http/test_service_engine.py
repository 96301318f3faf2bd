"""The Engine behind the service: decode slots bound how many uploads are decoded at once, and a
search that will not re-rank does not pay for keypoints."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

import artefact.api.http.engine as engine_module
from artefact.api.http.engine import Engine


@pytest.fixture(scope="module")
def engine_factory(session_home_factory: Callable[[str], Path], settings_factory):
    made: list[Engine] = []

    def make(**overrides: Any) -> Engine:
        eng = Engine(settings_factory(session_home_factory("engine"), **overrides))
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.close()


def test_decode_slots_bound_concurrent_decodes(engine_factory, catalogue_jpeg: bytes, monkeypatch) -> None:
    eng = engine_factory(decode_slots=3)
    real = engine_module.load_photo
    busy = 0
    most = 0
    lock = threading.Lock()
    full = threading.Event()  # set once three decodes run at once: an event, not a guess at timing

    def counting_load(*args: Any, **kwargs: Any):
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
            if busy >= 3:
                full.set()
        try:
            # The first decodes hold their slot until the slots are full, so the count reaches 3 whatever
            # the machine's speed; with no bound, the other threads pile in past 3 meanwhile.
            full.wait(timeout=30)
            return real(*args, **kwargs)
        finally:
            with lock:
                busy -= 1

    monkeypatch.setattr(engine_module, "load_photo", counting_load)
    with ThreadPoolExecutor(8) as pool:
        photos = list(pool.map(lambda _: eng.prepare(catalogue_jpeg), range(16)))
    assert len(photos) == 16 and all(p.array.shape[:2] == (eng.embedder.preprocess.size,) * 2 for p in photos)
    assert most == 3


def test_keypoints_only_when_asked(engine_factory, catalogue_jpeg: bytes) -> None:
    eng = engine_factory()
    assert eng.library.local_features  # the sample index stores local features
    with_kp = eng.prepare(catalogue_jpeg)
    without = eng.prepare(catalogue_jpeg, local_features=False)
    assert with_kp.features is not None and len(with_kp.features) > 50
    assert without.features is None
    assert (without.array == with_kp.array).all() and without.sha256 == with_kp.sha256
