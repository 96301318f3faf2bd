"""The hostile-upload corpus (tests/hostile_corpus.py) thrown at `artefact serve` running as a user runs
it: photo search, object create and add-photos. No 5xx, each file refused with its status or
decoded, the server's memory bounded (VmHWM and VmRSS from /proc), nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hostile_corpus import corpus

# Memory bounds for the whole corpus, three endpoints each, after a warm-up. A 16000x2 PNG alone
# used to take +1.6 GB; the files here that decode are all small, so growth is allocator slack.
PEAK_GROWTH_MIB = 200
RSS_GROWTH_MIB = 120


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _mem(pid: int) -> tuple[float, float]:
    """(peak RSS, current RSS) of the server process, MiB."""
    return _status_kib(pid, "VmHWM") / 1024, _status_kib(pid, "VmRSS") / 1024


@pytest.fixture(scope="module")
def server(session_home_factory, tiny_config_dir, server_process) -> Any:
    home = session_home_factory("hostile")
    proc = server_process(home, tiny_config_dir, env={"ARTEFACT_SEARCH_RATE_PER_MINUTE": "0",
                                                      "ARTEFACT_DECODE_SLOTS": "2"})
    yield proc
    proc.stop()


def _client(server: Any, role: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.keys[role]}"},
                        trust_env=False, timeout=120)


def _upload(name: str, data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    # The service decides by content: the declared type says nothing.
    return [("photos", (name, data, "application/octet-stream"))]


def test_the_hostile_corpus_over_http(server, helpers, catalogue_jpeg) -> None:
    officer, curator = _client(server, "officer"), _client(server, "curator")
    try:
        for _ in range(3):  # warm-up: model, allocator pools, the decode path
            assert officer.post("/v1/search/photo", files=helpers.upload(catalogue_jpeg)).status_code == 200
        r = curator.post("/v1/objects", data={"record": json.dumps({"id": "HOSTILE-BASE", "title": "base"})},
                         files=helpers.upload(helpers.distinct_photo(500)))
        assert r.status_code == 201, r.text
        before = officer.get("/v1/stats").json()
        peak0, rss0 = _mem(server.pid)

        decoded, wrong = 0, []
        for n, item in enumerate(corpus()):
            files = _upload(item.name, item.data)
            search = officer.post("/v1/search/photo", files=files)
            oid = f"HOSTILE-{n:02d}"
            create = curator.post("/v1/objects", files=files,
                                  data={"record": json.dumps({"id": oid, "title": item.name})})
            add = curator.post("/v1/objects/HOSTILE-BASE/photos", files=files)
            got = (search.status_code, create.status_code, add.status_code)
            if any(s >= 500 for s in got):
                wrong.append((item.name, got, search.text[:200], create.text[:200]))
                continue
            if search.status_code not in item.expect:
                wrong.append((item.name, got, search.text[:200]))
            elif search.status_code == 200:  # it decodes (a first frame, metadata ignored): stored everywhere
                if got != (200, 201, 200):
                    wrong.append((item.name, got, create.text[:200], add.text[:200]))
                decoded += 1
            else:  # refused alike by all three
                if create.status_code != search.status_code or add.status_code != search.status_code:
                    wrong.append((item.name, got, create.text[:200], add.text[:200]))
                assert "detail" in search.json()
                assert officer.get(f"/v1/objects/{oid}").status_code == 404, item.name  # nothing half-written
        assert not wrong, wrong

        after = officer.get("/v1/stats").json()
        assert after["objects"] == before["objects"] + decoded
        assert after["images"] == before["images"] + 2 * decoded  # each decodable file: created and added once
        assert after["vectors"] == after["images"]
        base = officer.get("/v1/objects/HOSTILE-BASE").json()
        assert len(base["images"]) == 1 + decoded

        peak1, rss1 = _mem(server.pid)
        print(f"\nserver memory over the corpus ({len(corpus())} files x 3 endpoints): "
              f"peak {peak0:.0f} -> {peak1:.0f} MiB, RSS {rss0:.0f} -> {rss1:.0f} MiB")
        assert peak1 - peak0 < PEAK_GROWTH_MIB, (peak0, peak1)
        assert rss1 - rss0 < RSS_GROWTH_MIB, (rss0, rss1)
        assert officer.get("/readyz").status_code == 200  # still serving
    finally:
        officer.close()
        curator.close()
