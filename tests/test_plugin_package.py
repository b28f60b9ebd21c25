"""A third-party adapter package, installed for real, is used exactly like a built-in format."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.auth import grant_in
from tests.test_sources_docs import block_after


def test_installed_adapter_package_ingests(tmp_path: Path) -> None:
    package = tmp_path / "honeyatlas-acme"
    package.mkdir()
    (package / "pyproject.toml").write_text(block_after("plugin-pyproject"))
    (package / "honeyatlas_acme.py").write_text(block_after("plugin-module"))
    target = tmp_path / "site"
    # A real install (wheel build, dist-info with entry points) into a directory of its own,
    # so the test environment itself is left as it was.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(package)],
        check=True, timeout=300,
    )
    assert (target / "honeyatlas_acme.py").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    env["HONEYATLAS_GEOIP_SEARCH_CITY_DB"] = "false"
    data = tmp_path / "data"
    added = subprocess.run([sys.executable, "-m", "honeyatlas", "sensor", "add", "acme-01", "--honeypot", "acme",
                            "--data-dir", str(data)], capture_output=True, text=True, env=env, check=True)
    token = added.stdout.split("store it now): ")[1].strip()
    server = subprocess.Popen([sys.executable, "-m", "honeyatlas", "serve", "--port", "0", "--data-dir", str(data)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split("serving on ", 1)[1].split()[0]
        grant_in(url, data)  # a reader for the API (tests/auth.py)
        assert "acme" in httpx.get(f"{url}api/v1/health").json()["formats"]
        record = {"acme": 1, "at": time.time(), "ip": "8.8.8.8", "hits": [22, "23", 99999, 445]}
        for fmt in ("acme", "auto"):
            response = httpx.post(f"{url}api/v1/ingest/{fmt}", json=[record], headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200 and response.json()["events"] == 3, response.text
        events = httpx.get(f"{url}api/v1/events").json()["events"]
        assert sorted(e["dst_port"] for e in events) == [22, 22, 23, 23, 445, 445]
        assert {e["honeypot"] for e in events} == {"acme"} and {e["kind"] for e in events} == {"scan"}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
