"""HTTPS and WSS served directly (`serve --tls-cert FILE --tls-key FILE`), with a certificate
made here by openssl for 127.0.0.1; and one clear error for a certificate that is not one."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from honeyatlas.access import Role
from tests.auth import ANONYMOUS, headers_for
from tests.conftest import start_server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_https_and_wss_with_a_secure_session_cookie(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server, stop = start_server(tmp_path / "data", server={"tls_cert_path": str(cert), "tls_key_path": str(key)})
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(f"{server.url}api/v1/health", verify=trust).json()["status"] in ("ok", "degraded")
        server.service.accounts.add_user("ana", Role.ANALYST, "analyst password 1234")
        login = httpx.post(f"{server.url}api/v1/login", json={"username": "ana", "password": "analyst password 1234"},
                           headers={ANONYMOUS: "1"}, verify=trust)
        assert login.status_code == 200
        assert "secure" in [part.strip().lower() for part in login.headers["set-cookie"].split(";")]
        ws_url = server.url.replace("https://", "wss://") + "api/v1/live"
        with connect(ws_url, ssl=trust, additional_headers=headers_for(server.url), open_timeout=10) as ws:
            assert '"snapshot"' in str(ws.recv(timeout=10))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}api/v1/health", verify=True)  # not a public CA's: the client refuses
    finally:
        stop()


def test_a_broken_certificate_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    result = subprocess.run(
        [sys.executable, "-m", "honeyatlas", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--tls-cert", str(bad), "--tls-key", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot serve HTTPS" in last and "tls_cert_path" in last
    half = subprocess.run(
        [sys.executable, "-m", "honeyatlas", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--tls-cert", str(bad)], capture_output=True, text=True, timeout=60,
    )
    assert half.returncode == 2 and "both tls_cert_path and tls_key_path" in half.stderr
