"""Fault injection at the service (issue 10, finding 8): a truncated, an outdated and a deleted
`vectors.faiss` under a real server. The rebuild runs in the background: /readyz says "rebuilding",
searches and catalogue writes get 503 with Retry-After (never an answer from the wrong vectors),
object reads go on; then the index is whole again and the file on disk repaired."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from artefact.index.home import Home
from artefact.index.library import Library


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _outdate(path: Path) -> None:
    """An older, smaller index file beside the current manifest (a rename lost in a crash)."""
    import faiss
    import numpy as np

    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    index.remove_ids(faiss.IDSelectorBatch(ids[len(ids) // 3 :]))
    faiss.write_index(index, str(path))


def _delete(path: Path) -> None:
    path.unlink()


def _wait_for(client: httpx.Client, status: str, timeout_s: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.get("/readyz")
            if last.json().get("status") == status:
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"/readyz never said {status!r}; last: {last and last.text}")


@pytest.mark.parametrize("fault", [_truncate, _outdate, _delete], ids=["truncated", "outdated", "deleted"])
def test_searches_wait_for_the_rebuild_and_then_find_the_right_objects(
    fault, copy_home, start_live_server, helpers, catalogue_jpeg, monkeypatch
) -> None:
    home = copy_home("rebuild")
    with Library(home) as lib:
        photos = lib.catalogue.counts()["images"]
    fault(Home(home).vectors)

    # Hold the rebuild at its start so the test can look at the service while it runs.
    gate, started = threading.Event(), threading.Event()
    real = Library.rebuild_vectors

    def held(self: Library):  # type: ignore[no-untyped-def]
        started.set()
        assert gate.wait(120), "the test never released the rebuild"
        return real(self)

    monkeypatch.setattr(Library, "rebuild_vectors", held)
    server = start_live_server(home, wait=False)
    try:
        anon, officer, curator = server.client(None), server.client("officer"), server.client("curator")
        ready = _wait_for(anon, "rebuilding")
        assert started.wait(30)
        assert ready.status_code == 503 and ready.headers.get("retry-after")
        assert ready.json()["detail"]

        r = officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg))
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        assert "rebuild" in r.json()["detail"]
        r = officer.post("/v1/search/text", json={"text": "a painting"})
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        r = curator.post("/v1/objects", data={"record": '{"id": "DURING-REBUILD"}'},
                         files=helpers.upload(helpers.distinct_photo(77)))
        assert r.status_code == 503, r.text
        assert officer.get("/v1/objects/SMP-PAINT-01").status_code == 200  # reads go on
        assert officer.get("/v1/objects/DURING-REBUILD").status_code == 404  # nothing half-written
        assert anon.get("/healthz").status_code == 200

        gate.set()
        assert _wait_for(anon, "ready").status_code == 200
        stats = officer.get("/v1/stats").json()
        assert stats["vectors"] == stats["images"] == photos
        r = officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg), data={"k": "3"})
        assert r.status_code == 200, r.text
        best = r.json()["matches"][0]
        assert best["object"]["id"] == "SMP-PAINT-01" and best["score"] > 0.99
    finally:
        gate.set()
        server.stop()
    with Library(home) as lib:  # the rebuilt index was saved
        assert lib.check() == []
