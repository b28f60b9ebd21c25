"""The command line, run as a user would: a subprocess per command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

HONEYATLAS = [sys.executable, "-m", "honeyatlas"]


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    return subprocess.run([*HONEYATLAS, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_sensor_add_list_revoke(tmp_path: Path) -> None:
    added = run("sensor", "add", "edge-01", "--honeypot", "cowrie", "--location", "52.52,13.40",
                "--label", "Berlin DC", data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    token = added.stdout.split("shown once, store it now): ")[1].strip()
    assert token.startswith("hat_")
    registry = (tmp_path / "registry.sqlite3").read_bytes()
    assert token.encode() not in registry and token.split("_", 2)[2].encode() not in registry  # stored hashed

    listed = json.loads(run("sensor", "list", "--json", data_dir=tmp_path).stdout)
    assert listed[0] | {"created_at": None} == {
        "name": "edge-01", "honeypot": "cowrie", "lat": 52.52, "lon": 13.4, "label": "Berlin DC",
        "demo": False, "revoked": False, "created_at": None,
        "formats": None, "rate_per_second": None, "burst": None, "syslog_sources": [],  # None: the defaults
    }
    assert "edge-01" in run("sensor", "list", data_dir=tmp_path).stdout

    again = run("sensor", "add", "edge-01", "--honeypot", "cowrie", data_dir=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr

    assert run("sensor", "revoke", "edge-01", data_dir=tmp_path).returncode == 0
    assert json.loads(run("sensor", "list", "--json", data_dir=tmp_path).stdout)[0]["revoked"] is True
    missing = run("sensor", "revoke", "nope", data_dir=tmp_path)
    assert missing.returncode == 2 and "no sensor named" in missing.stderr


def test_bad_location_is_one_clear_line(tmp_path: Path) -> None:
    bad = run("sensor", "add", "x", "--honeypot", "cowrie", "--location", "north", data_dir=tmp_path)
    assert bad.returncode == 2 and "LAT,LON" in bad.stderr
    for value in ("-33.87", "-91,0", "12,-181"):
        bad = run("sensor", "add", "x", "--honeypot", "cowrie", "--location", value, data_dir=tmp_path)
        error = bad.stderr.splitlines()[-1]
        assert bad.returncode == 2 and "expected LAT,LON" in error and value in error, bad.stderr


def test_negative_location_in_the_plain_form(tmp_path: Path) -> None:
    """South of the equator and west of Greenwich, written as anyone would: no `=` needed."""
    for name, value in (("syd-01", "-33.87,151.21"), ("nyc-01", "40.71,-74.01"), ("lim-01", "-12.05,-77.04")):
        added = run("sensor", "add", name, "--honeypot", "cowrie", "--location", value, data_dir=tmp_path)
        assert added.returncode == 0, added.stderr
    listed = {s["name"]: (s["lat"], s["lon"]) for s in json.loads(run("sensor", "list", "--json", data_dir=tmp_path).stdout)}
    assert listed == {"syd-01": (-33.87, 151.21), "nyc-01": (40.71, -74.01), "lim-01": (-12.05, -77.04)}


def test_serve_prints_url_and_answers_while_sensor_cli_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    env["HONEYATLAS_GEOIP_SEARCH_CITY_DB"] = "false"
    proc = subprocess.Popen([*HONEYATLAS, "serve", "--port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("serving on ", 1)[1].split()[0]
        assert httpx.get(f"{url}api/v1/health", timeout=10).json()["status"] == "ok"
        # The registry is shared with the running server: a sensor added now can post at once.
        added = run("sensor", "add", "late", "--honeypot", "cowrie", "--location", "1,2", data_dir=tmp_path)
        token = added.stdout.split("store it now): ")[1].strip()
        record = {"eventid": "cowrie.session.connect", "src_ip": "8.8.8.8", "timestamp": "2026-01-01T00:00:00Z"}
        response = httpx.post(f"{url}api/v1/ingest/cowrie", json=[record], headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.json()["accepted"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), data_dir=tmp_path)
    assert result.returncode == 2
    assert "honeyatlas: error: cannot listen on 127.0.0.1:" in result.stderr


def test_ingest_imports_a_gzip_log_with_progress_and_summary(tmp_path: Path) -> None:
    from tests.conftest import SAMPLES, start_server

    lines = (SAMPLES / "cowrie.json").read_bytes().splitlines()
    lines.insert(10, b'{"eventid": "cowrie.login.failed", "src_ip": ')  # a torn line
    log = tmp_path / "cowrie.json.gz"
    import gzip

    log.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    data = tmp_path / "data"
    assert run("sensor", "add", "lab-cowrie-01", "--honeypot", "cowrie", "--location", "50,8", data_dir=data).returncode == 0
    result = run("ingest", str(log), "--format", "cowrie", "--sensor", "lab-cowrie-01", "--batch-size", "25",
                 data_dir=data)
    assert result.returncode == 0, result.stderr
    assert "100.0%" in result.stderr and "100 records" in result.stderr  # progress on stderr
    assert "100 records" in result.stdout and "99 accepted (99 events" in result.stdout
    assert "1 rejected" in result.stdout and "rejected 1: invalid JSON" in result.stdout

    missing = run("ingest", str(log), "--format", "cowrie", "--sensor", "nobody", data_dir=data)
    assert missing.returncode == 2 and "no active sensor named 'nobody'" in missing.stderr
    unknown = run("ingest", str(log), "--format", "nope", "--sensor", "lab-cowrie-01", data_dir=data)
    assert unknown.returncode == 2 and "unknown format 'nope'" in unknown.stderr

    running, stop = start_server(data)
    try:
        events = httpx.get(f"{running.url}api/v1/events", params={"limit": 1000}).json()["events"]
        assert len(events) == 99
        kept = httpx.get(f"{running.url}api/v1/rejected").json()["rejected"]
        assert [k["index"] for k in kept] == [10] and kept[0]["source"] == "bulk"
    finally:
        stop()
