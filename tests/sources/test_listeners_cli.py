"""`honeyatlas serve --hpfeeds-listen ... --syslog-listen ...`: the flags start real listeners."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.auth import grant_in
from tests.conftest import SAMPLES

HONEYATLAS = [sys.executable, "-m", "honeyatlas"]


def test_serve_flags_start_hpfeeds_and_syslog(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    env["HONEYATLAS_GEOIP_SEARCH_CITY_DB"] = "false"
    data = str(tmp_path / "data")
    added = subprocess.run([*HONEYATLAS, "sensor", "add", "pot-01", "--honeypot", "cowrie", "--hpfeeds",
                            "--data-dir", data], capture_output=True, text=True, env=env, check=True)
    ident = added.stdout.split("hpfeeds ident: ")[1].split()[0]
    secret = added.stdout.split("hpfeeds secret (shown once, store it now): ")[1].split()[0]
    server = subprocess.Popen(
        [*HONEYATLAS, "serve", "--port", "0", "--data-dir", data, "--hpfeeds-listen", "tcp:127.0.0.1:0",
         "--syslog-listen", "udp:127.0.0.1:0?sensor=pot-01&format=cowrie"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split("serving on ", 1)[1].split()[0]
        grant_in(url, Path(data))  # a reader for the API (tests/auth.py)
        lines = [server.stdout.readline().strip(), server.stdout.readline().strip()]
        syslog_port = int(next(line for line in lines if line.startswith("syslog udp:")).rsplit(":", 1)[1])
        hpfeeds_port = int(next(line for line in lines if line.startswith("hpfeeds tcp:")).rsplit(":", 1)[1])

        log_lines = (SAMPLES / "cowrie.json").read_text().splitlines()[:5]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for line in log_lines:
                udp.sendto(f"<134>Nov 27 21:42:54 pot-01 cowrie: {line}".encode(), ("127.0.0.1", syslog_port))

        summary = (SAMPLES / "cowrie-sessions.jsonl").read_text().splitlines()[0]

        async def publish() -> None:
            from hpfeeds.asyncio import ClientSession

            async with ClientSession("127.0.0.1", hpfeeds_port, ident, secret) as client:
                client.publish("cowrie.sessions", summary.encode())
                await asyncio.sleep(0.5)

        asyncio.run(publish())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            events = httpx.get(f"{url}api/v1/events", params={"limit": 1000}).json()["events"]
            actions = {e["action"] for e in events}
            if len(events) >= 5 and "cowrie.session.closed" in actions:
                break
            time.sleep(0.2)
        assert {e["sensor"] for e in events} == {"pot-01"}
        metrics = httpx.get(f"{url}metrics").text
        assert 'honeyatlas_records_received_total{format="cowrie",source="syslog"} 5' in metrics
        assert 'source="hpfeeds"' in metrics
        assert json.loads(summary)["session"] in {e.get("session") for e in events}
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
