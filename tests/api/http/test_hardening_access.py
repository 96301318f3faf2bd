"""Hardening of access (issue 10, findings 1, 5, 11 and 14): open mode, Host/Origin checks, bounds, 500s, headers, rate limit.

Every server here is real uvicorn on a loopback port; every client is built with `trust_env=False`.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from typing import Any, Callable

import pytest

from artefact.api.http.security import KeyStore

RATE = 4  # searches per minute per key on the module's server


@pytest.fixture(scope="module")
def keyed(session_home_factory: Callable[[str], Any], start_live_server: Callable[..., Any]) -> Any:
    """A server with one key per role and a low search rate limit (tests use their own keys for searches)."""
    return start_live_server(session_home_factory("hardening-keyed"), search_rate_per_minute=RATE)


@pytest.fixture(scope="module")
def open_server(session_home_factory: Callable[[str], Any], start_live_server: Callable[..., Any]) -> Any:
    """A server on a home where no key was ever created: open mode, loopback only."""
    return start_live_server(session_home_factory("hardening-open"), keys=False)


def _new_key(server: Any, name: str, role: str = "officer") -> str:
    store = KeyStore(server.settings.paths.access)
    try:
        return store.create(name, role)
    finally:
        store.close()


# -- finding 1: revoking the last key never opens a running server -----------------------


def test_revoking_every_key_while_running_does_not_open_the_server(copy_home, start_live_server) -> None:
    server = start_live_server(copy_home("revoke-all"))
    assert server.client(None).get("/v1/whoami").status_code == 401
    store = KeyStore(server.settings.paths.access)
    try:
        for key in store.list():
            if key.revoked_at is None:
                store.revoke(key.name)
        assert all(k.revoked_at for k in store.list())
    finally:
        store.close()
    anon = server.client(None).get("/v1/whoami")
    assert anon.status_code == 401, anon.text
    assert server.client("admin").get("/v1/whoami").status_code == 401  # a revoked admin key stays revoked
    assert server.client(None).get("/v1/audit/searches").status_code == 401


def test_a_key_created_while_an_open_server_runs_ends_open_mode(copy_home, start_live_server) -> None:
    server = start_live_server(copy_home("open-then-keyed"), keys=False)
    assert server.client(None).get("/v1/whoami").json() == {"name": "anonymous", "role": "admin"}
    token = _new_key(server, "first", "officer")
    assert server.client(None).get("/v1/whoami").status_code == 401
    assert server.client(token).get("/v1/whoami").json() == {"name": "first", "role": "officer"}


def test_open_mode_needs_a_loopback_address(copy_home, start_live_server) -> None:
    """No key ever created, but the service is configured for a network address: a key is still required."""
    server = start_live_server(copy_home("open-off-loopback"), keys=False, host="0.0.0.0")
    r = server.client(None).get("/v1/whoami")
    assert r.status_code == 401 and "key" in r.json()["detail"]


# -- finding 5: open mode answers loopback names only, no foreign origin, no forwarding ------


def test_open_mode_refuses_a_foreign_host_name(open_server) -> None:
    c = open_server.client(None)
    r = c.get("/v1/whoami", headers={"Host": "evil.example"})
    assert r.status_code == 400 and "host" in r.json()["detail"].lower(), r.text
    assert c.get("/", headers={"Host": "evil.example:8000"}).status_code == 400
    for host in ("localhost", f"localhost:{open_server.port}", "127.0.0.1", f"[::1]:{open_server.port}", "[::1]"):
        assert c.get("/v1/whoami", headers={"Host": host}).status_code == 200, host


def test_open_mode_refuses_state_changes_from_a_foreign_origin(open_server, helpers) -> None:
    c = open_server.client(None)
    record = {"id": "HARD-ORIGIN-1", "title": "cross-site"}
    files = helpers.upload(helpers.distinct_photo(501))
    r = c.post("/v1/objects", data={"record": json.dumps(record)}, files=files, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "origin" in r.json()["detail"].lower(), r.text
    assert c.get("/v1/objects/HARD-ORIGIN-1").status_code == 404
    assert c.delete("/v1/objects/SMP-PAINT-01", headers={"Origin": "null"}).status_code == 403
    # reads are not state changes; the page's own origin may change state
    assert c.get("/v1/stats", headers={"Origin": "https://evil.example"}).status_code == 200
    ok = c.post("/v1/objects", data={"record": json.dumps(record)}, files=files, headers={"Origin": open_server.url})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"}])
def test_open_mode_refuses_forwarded_requests(open_server, header) -> None:
    r = open_server.client(None).get("/v1/whoami", headers=header)
    assert r.status_code == 403 and "forward" in r.json()["detail"].lower(), r.text


def test_with_keys_host_is_not_restricted_and_cors_stays_off(keyed) -> None:
    c = keyed.client("officer")
    assert c.get("/v1/whoami", headers={"Host": "search.example.org"}).status_code == 200
    r = c.get("/v1/whoami", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = c.options("/v1/whoami", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


# -- finding 11: bounded integers; a 500 is JSON with an error id and keeps the connection ---


@pytest.mark.parametrize("path", [
    "/v1/images/99999999999999999999",
    "/v1/images/99999999999999999999/thumbnail",
    "/v1/images/-99999999999999999999",
    "/v1/objects?offset=1000000000000000000000000000000",
    "/v1/searches/abc/evidence/99999999999999999999",
    "/v1/audit/changes?limit=99999999999999999999",
])
def test_oversized_integers_are_refused_with_422(keyed, path) -> None:
    r = keyed.client("admin").get(path)
    assert r.status_code == 422, (path, r.status_code, r.text)


def test_every_integer_parameter_has_bounds(keyed) -> None:
    spec = keyed.client(None).get("/openapi.json").json()
    loose = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schema = p.get("schema", {})
                options = schema.get("anyOf", [schema])
                for s in options:
                    if s.get("type") == "integer" and ("maximum" not in s or "minimum" not in s):
                        loose.append(f"{method.upper()} {path} {p['name']}")
    assert not loose, loose


def _raw_exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request on an open socket and read exactly one response."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"server closed the connection (read {buf!r})")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection mid-body")
        body += chunk
    return status, headers, body


def test_an_unexpected_error_answers_json_with_an_error_id_and_keeps_the_connection(
    keyed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = keyed.app.state.service.engine

    def broken() -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "public_stats", broken)
    token = keyed.keys["officer"]
    req = (f"GET /v1/stats HTTP/1.1\r\nHost: 127.0.0.1:{keyed.port}\r\n"
           f"Authorization: Bearer {token}\r\n\r\n").encode()
    caplog.set_level(logging.ERROR)
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=30) as sock:
        status, headers, body = _raw_exchange(sock, req)
        assert status == 500 and headers["content-type"].startswith("application/json")
        out = json.loads(body)
        assert re.fullmatch(r"[0-9a-f]{12,32}", out["error_id"]) and out["error_id"] in out["detail"]
        assert "disk on fire" not in body.decode()  # no internals to the client
        assert headers.get("connection", "").lower() != "close"
        again, _, _ = _raw_exchange(sock, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{keyed.port}\r\n\r\n".encode())
        assert again == 200
    assert out["error_id"] in caplog.text and "disk on fire" in caplog.text


# -- finding 14: security headers on every response; a per-key search rate limit ---------------


def test_every_response_carries_the_security_headers(keyed, open_server) -> None:
    responses = [
        keyed.client(None).get("/healthz"), keyed.client(None).get("/"), keyed.client("officer").get("/v1/stats"),
        keyed.client(None).get("/v1/stats"), keyed.client("officer").get("/v1/no-such-route"),
        keyed.client(None).get("/static/app.js"), keyed.client("officer").get("/v1/images/999999"),
        open_server.client(None).get("/v1/whoami", headers={"Host": "evil.example"}),
    ]
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
        assert r.headers.get("x-frame-options") == "DENY", where
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), where
        assert r.headers.get("x-content-type-options") == "nosniff", where
        assert r.headers.get("referrer-policy") == "no-referrer", where


def test_searches_are_rate_limited_per_key_with_retry_after(keyed) -> None:
    hasty = keyed.client(_new_key(keyed, "hasty"))
    answers = [hasty.post("/v1/search/text", json={"text": f"a coin {i}"}) for i in range(RATE + 1)]
    assert [r.status_code for r in answers[:RATE]] == [200] * RATE
    limited = answers[RATE]
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "limit" in limited.json()["detail"]
    # another key has its own budget; non-search routes are not limited
    assert keyed.client(_new_key(keyed, "patient")).post("/v1/search/text", json={"text": "a coin"}).status_code == 200
    assert hasty.get("/v1/stats").status_code == 200
