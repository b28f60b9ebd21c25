"""Correlation end to end: real cowrie records from three sensors through a real server
become incidents that are stored, listed, pushed live, survive a restart, and feed profiles."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import websockets

from tests.conftest import ServerStarter
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post

DOWNLOADED = "fa7de36ac4b90bfa2599b465ea8564cabefad7f3ba1d4657dd0899adab70b24e"  # cowrie's file_download
SENSORS = {"fra-1": (50.11, 8.68), "nyc-1": (40.71, -74.0), "sin-1": (1.35, 103.82)}


def ingest_everywhere(server, tokens: dict[str, str]) -> list[dict]:  # type: ignore[no-untyped-def]
    """The real cowrie sample (public sources, recent timestamps) replayed at three sensors."""
    records = cowrie_records_with_public_sources(recent=True)
    for name in SENSORS:
        response = post(server, tokens[name], ndjson(records))
        assert response.status_code == 200 and response.json()["rejected"] == [], response.text
    return records


def test_incidents_from_three_sensors_stored_listed_profiled_and_kept(
    start_on_backend: ServerStarter, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server, stop = start_on_backend(data_dir)
    try:
        tokens = {name: server.add_sensor(name, location=where) for name, where in SENSORS.items()}

        async def live() -> list[dict]:
            frames = []
            async with websockets.connect(server.ws_url, additional_headers=server.auth) as ws:
                snapshot = json.loads(await ws.recv())
                assert snapshot["type"] == "snapshot" and snapshot["incidents"] == []
                await asyncio.get_running_loop().run_in_executor(None, ingest_everywhere, server, tokens)
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "incidents":
                        frames.append(frame)
                        if any(i["kind"] == "epidemic" for f in frames for i in f["incidents"]):
                            return frames

        frames = asyncio.run(live())
        listed = httpx.get(f"{server.url}api/v1/incidents", params={"limit": 1000}).json()["incidents"]
        by_kind: dict[str, list[dict]] = {}
        for incident in listed:
            by_kind.setdefault(incident["kind"], []).append(incident)
        # every source of the sample reached all three sensors
        multi = {i["key"]: i for i in by_kind["multi_sensor"]}
        assert "8.8.8.8" in multi and sorted(multi["8.8.8.8"]["sensors"]) == sorted(SENSORS)
        assert multi["8.8.8.8"]["timeline"][0]["sensor"] == "fra-1"  # posted first
        # the sample's downloaded file spread fra-1 -> nyc-1 -> sin-1
        digests = {r["shasum"] for r in cowrie_records_with_public_sources() if "file_" in r["eventid"]}
        assert {i["key"] for i in by_kind["epidemic"]} == digests  # every payload reached 3 sensors
        epidemic = next(i for i in by_kind["epidemic"] if i["key"] == DOWNLOADED)
        assert [step["sensor"] for step in epidemic["timeline"]] == ["fra-1", "nyc-1", "sin-1"]
        assert epidemic["status"] == "open"
        pushed = {i["id"] for f in frames for i in f["incidents"]}
        assert epidemic["id"] in pushed and multi["8.8.8.8"]["id"] in pushed

        one = httpx.get(f"{server.url}api/v1/incidents/{epidemic['id']}").json()
        assert one == epidemic
        assert httpx.get(f"{server.url}api/v1/incidents/inc_nope").status_code == 404
        only = httpx.get(f"{server.url}api/v1/incidents", params={"kind": "epidemic", "status": "open"}).json()
        assert {i["id"] for i in only["incidents"]} == {i["id"] for i in by_kind["epidemic"]}
        assert httpx.get(f"{server.url}api/v1/incidents", params={"kind": "bogus"}).status_code == 400

        sessions_with_download = {
            r["src_ip"] for r in cowrie_records_with_public_sources() if r["eventid"].endswith("file_download")
        }
        [ip] = sessions_with_download
        profile = httpx.get(f"{server.url}api/v1/attackers/{ip}").json()
        assert profile["sensor_count"] == 3 and sorted(profile["sensors"]) == sorted(SENSORS)
        assert "malware_dropper" in profile["classification"]
        assert any(i["kind"] == "epidemic" for i in profile["incidents"])
        assert DOWNLOADED in {c["value"] for c in profile["sha256"]}
        assert httpx.get(f"{server.url}api/v1/attackers/not-an-ip").status_code == 400
        assert httpx.get(f"{server.url}api/v1/attackers/192.0.2.99").status_code == 404

        malware = httpx.get(f"{server.url}api/v1/malware/{epidemic['key'].upper()}").json()
        assert [s["sensor"] for s in malware["sightings"]] == ["fra-1", "nyc-1", "sin-1"]
        assert [p["sensors"] for p in malware["curve"]] == [1, 2, 3]
        assert malware["incidents"][0]["id"] == epidemic["id"]
        assert httpx.get(f"{server.url}api/v1/malware/abc").status_code == 400

        metrics = httpx.get(f"{server.url}metrics").text
        assert f'honeyatlas_incidents_opened_total{{kind="epidemic"}} {len(digests)}' in metrics
        assert 'honeyatlas_correlation_tracked{detector="multi_sensor"}' in metrics
    finally:
        stop()

    # After a restart stored incidents survive, open ones seed the snapshot, and the detectors'
    # state is rebuilt from stored events: a fourth sensor grows the same incidents.
    server, stop = start_on_backend(data_dir)
    try:
        again = httpx.get(f"{server.url}api/v1/incidents", params={"limit": 1000}).json()["incidents"]
        assert {i["id"] for i in again} == {i["id"] for i in listed}
        assert {i["status"] for i in again} == {"open"}
        token = server.add_sensor("syd-1", location=(-33.87, 151.21))
        assert post(server, token, ndjson(cowrie_records_with_public_sources(recent=True))).status_code == 200
        expected = [*multi["8.8.8.8"]["sensors"], "syd-1"]
        deadline = time.monotonic() + 10  # growth is saved within correlation.save_interval_seconds
        while True:
            grown = httpx.get(f"{server.url}api/v1/incidents/{multi['8.8.8.8']['id']}").json()
            if grown["sensors"] == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert grown["sensors"] == expected
        assert len(httpx.get(f"{server.url}api/v1/incidents", params={"limit": 1000}).json()["incidents"]) == len(
            listed)

        async def snapshot() -> dict:
            async with websockets.connect(server.ws_url, additional_headers=server.auth) as ws:
                return json.loads(await ws.recv())

        assert epidemic["id"] in {i["id"] for i in asyncio.run(snapshot())["incidents"]}
    finally:
        stop()
