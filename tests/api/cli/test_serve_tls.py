"""`artefact serve` and the network (issue 10, findings 1 and 6): TLS, the plain-HTTP warning, trusted proxies,
and open mode refused off loopback."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from artefact.api.cli import main
from artefact.api.http.security import KeyStore
from artefact.index.home import Home


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, with its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "artefact-search test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _with_key(home: Path) -> str:
    home.mkdir(parents=True, exist_ok=True)
    store = KeyStore(Home(home).access)
    try:
        return store.create("officer", "officer")
    finally:
        store.close()


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """uvicorn's serving replaced: what `serve` would start on the socket it bound, without serving anything."""
    import uvicorn

    seen: dict[str, Any] = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        c = server.config
        seen.update(app=c.app, host=c.host, port=c.port, ssl_certfile=c.ssl_certfile, ssl_keyfile=c.ssl_keyfile,
                    proxy_headers=c.proxy_headers, forwarded_allow_ips=c.forwarded_allow_ips,
                    bound=[s.getsockname()[:2] for s in sockets or []])

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return seen


def test_tls_files_reach_uvicorn(tmp_path: Path, fake_uvicorn: dict[str, Any], capsys, monkeypatch) -> None:
    cert, key = self_signed(tmp_path)
    _with_key(tmp_path / "home")
    with socket.socket() as default:  # the configured port, held here: --port 0 must not fall back to it
        default.bind(("0.0.0.0", 0))
        default.listen(1)
        monkeypatch.setenv("ARTEFACT_PORT", str(default.getsockname()[1]))
        assert main(["--home", str(tmp_path / "home"), "serve", "--host", "0.0.0.0", "--port", "0",
                     "--tls-cert", str(cert), "--tls-key", str(key)]) == 0, capsys.readouterr().err
        configured = default.getsockname()[1]
    assert fake_uvicorn["ssl_certfile"] == str(cert) and fake_uvicorn["ssl_keyfile"] == str(key)
    # --port 0: the OS picked the port; uvicorn serves that very socket, and serve said which it is.
    [(host, port)] = fake_uvicorn["bound"]
    assert fake_uvicorn["host"] == host == "0.0.0.0" and fake_uvicorn["port"] == port > 0 and port != configured
    assert f"listening on https://0.0.0.0:{port}\n" in capsys.readouterr().out
    assert fake_uvicorn["proxy_headers"] is False  # no proxy configured: forwarding headers are not believed


def test_plain_http_off_loopback_is_warned_loudly(tmp_path: Path, fake_uvicorn: dict[str, Any],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    _with_key(tmp_path / "home")
    caplog.set_level(logging.WARNING)
    assert main(["--home", str(tmp_path / "home"), "serve", "--host", "0.0.0.0", "--port", "0"]) == 0
    assert "PLAIN HTTP ON A NETWORK ADDRESS" in caplog.text and "--tls-cert" in caplog.text
    assert fake_uvicorn["ssl_certfile"] is None
    caplog.clear()
    assert main(["--home", str(tmp_path / "home"), "serve", "--host", "127.0.0.1", "--port", "0"]) == 0
    assert "PLAIN HTTP" not in caplog.text


def test_proxy_headers_are_believed_only_from_configured_proxies(tmp_path: Path, fake_uvicorn: dict[str, Any]) -> None:
    _with_key(tmp_path / "home")
    assert main(["--home", str(tmp_path / "home"), "serve", "--port", "0", "--trusted-proxy", "10.0.0.5",
                 "--trusted-proxy", "10.0.0.6"]) == 0
    assert fake_uvicorn["proxy_headers"] is True and fake_uvicorn["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"
    assert fake_uvicorn["host"] == "127.0.0.1"


@pytest.mark.parametrize("extra, message", [
    (["--tls-cert", "CERT"], "both"),
    (["--tls-cert", "CERT", "--tls-key", "missing.pem"], "does not exist"),
])
def test_bad_tls_flags_are_usage_errors(tmp_path: Path, fake_uvicorn: dict[str, Any], capsys, extra: list[str],
                                        message: str) -> None:
    cert, _ = self_signed(tmp_path)
    _with_key(tmp_path / "home")
    args = [str(cert) if a == "CERT" else str(tmp_path / a) if a.endswith(".pem") else a for a in extra]
    assert main(["--home", str(tmp_path / "home"), "serve", *args]) == 1
    assert message in capsys.readouterr().err and not fake_uvicorn


def test_open_mode_is_refused_off_loopback_even_after_every_key_was_revoked(tmp_path: Path, fake_uvicorn, capsys) -> None:
    home = tmp_path / "home"
    assert main(["--home", str(home), "serve", "--host", "0.0.0.0"]) == 1  # never a key: refused
    assert "no API keys" in capsys.readouterr().err and not fake_uvicorn
    _with_key(home)
    store = KeyStore(Home(home).access)
    store.revoke("officer")
    store.close()
    assert main(["--home", str(home), "serve", "--host", "0.0.0.0", "--port", "0"]) == 0  # keys required from now on, none open
    app = fake_uvicorn["app"]
    assert not app.state.service.open_mode


def test_a_port_in_use_is_a_clear_error(tmp_path: Path, fake_uvicorn: dict[str, Any], capsys) -> None:
    _with_key(tmp_path / "home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["--home", str(tmp_path / "home"), "serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err and not fake_uvicorn
    assert main(["--home", str(tmp_path / "home"), "serve", "--port", "65536"]) == 1
    assert "not a TCP port" in capsys.readouterr().err and not fake_uvicorn


def test_serve_answers_https_with_the_given_certificate(tmp_path: Path, tiny_config_dir: Path, helpers) -> None:
    cert, key = self_signed(tmp_path)
    home = tmp_path / "home"
    token = _with_key(home)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend", "open_clip", "--model", "tiny-clip",
         "--pretrained", "none", "--model-config-dir", str(tiny_config_dir), "--offline", "--device", "cpu", "-q",
         "serve", "--host", "127.0.0.1", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    log.close()
    try:
        port = helpers.listening_port(proc, tmp_path / "serve.log", timeout_s=120)
        context = ssl.create_default_context(cafile=str(cert))
        deadline, answer = time.monotonic() + 120, None
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, trust_env=False, timeout=5) as c:
            while time.monotonic() < deadline and proc.poll() is None:
                try:  # ready, not only live: a stop during the model load waits for the load to finish
                    if c.get("/readyz").status_code == 200:
                        answer = c.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        assert answer is not None, (tmp_path / "serve.log").read_text(errors="replace")[-2000:]
        assert answer.status_code == 200 and answer.json() == {"name": "officer", "role": "officer"}
        assert answer.headers["x-frame-options"] == "DENY"
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False, timeout=5).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
