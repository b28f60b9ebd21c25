"""The live hub: snapshot on connect, batched frames, bounded queues with counted drops."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
from websockets.sync.client import connect

from honeyatlas.event import Event, Kind, new_event_id
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus, Step
from honeyatlas.metrics import Metrics
from honeyatlas.sinks.hub import LiveClient, LiveHub
from tests.conftest import RunningServer
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post


def receive_until(ws, predicate, timeout: float = 10.0) -> list[dict]:  # type: ignore[no-untyped-def]
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        messages.append(message)
        if predicate(messages):
            return messages
    raise AssertionError(f"condition not met; got {[m['type'] for m in messages]}")


def test_websocket_client_receives_posted_events(server: RunningServer) -> None:
    token = server.add_sensor("lab-cowrie-01")
    records = cowrie_records_with_public_sources()
    post(server, token, ndjson(records[:4]))
    time.sleep(0.3)  # let the hub frame them, so they are in the snapshot of a new client
    with connect(server.ws_url, additional_headers=server.auth) as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        assert snapshot["type"] == "snapshot"
        assert len(snapshot["events"]) == 4
        assert all("raw" not in e for e in snapshot["events"])
        assert post(server, token, ndjson(records[4:])).status_code == 200

        def all_events(messages: list[dict]) -> bool:
            return sum(len(m.get("events", [])) for m in messages if m["type"] == "events") >= len(records) - 4

        messages = receive_until(ws, all_events)
        frames = [m for m in messages if m["type"] == "events"]
        received = [e for m in frames for e in m["events"]]
        ids = [e["id"] for e in snapshot["events"] + received]
        assert len(ids) == len(set(ids)) == len(records)  # no gap, no repeat
        assert len(frames) <= 3  # batched, not one message per event
        assert {e["src_geo"]["country"] for e in received if "src_geo" in e} >= {"US"}


def test_client_connecting_mid_stream_sees_no_gap_and_no_repeat(server: RunningServer) -> None:
    token = server.add_sensor("lab-cowrie-01")
    records = cowrie_records_with_public_sources()
    post(server, token, ndjson(records[:50]))
    with connect(server.ws_url, additional_headers=server.auth) as ws:  # the 50 may be framed or still pending: either way once
        post(server, token, ndjson(records[50:]))
        messages = receive_until(
            ws, lambda ms: sum(len(m.get("events", [])) for m in ms) >= len(records)
        )
        ids = [e["id"] for m in messages for e in m.get("events", [])]
        assert len(ids) == len(set(ids)) == len(records)


def test_idle_stream_sends_heartbeats(server: RunningServer) -> None:
    server.service.hub._heartbeat = 0.3  # short for the test; the default is 5 s
    with connect(server.ws_url, additional_headers=server.auth) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        assert json.loads(ws.recv(timeout=10))["type"] == "heartbeat"


def test_slow_client_loses_oldest_and_is_told() -> None:
    client = LiveClient(max_events=10)
    for i in range(5):
        client.offer(json.dumps({"frame": i}), 4)
    # 20 events offered into room for 10: the three oldest frames (12 events) went.
    assert client.dropped_unreported == 12
    messages = asyncio.run(client.next_messages())
    assert json.loads(messages[0]) == {"type": "dropped", "count": 12}
    assert [json.loads(m)["frame"] for m in messages[1:]] == [3, 4]


def _events(n: int) -> list[Event]:
    now = datetime.now(UTC)
    return [
        Event(id=new_event_id(), ts=now, ingest_ts=now, sensor="s", honeypot="cowrie", kind=Kind.SCAN,
              src_ip=f"8.8.8.{i}", raw="x" * 100)
        for i in range(n)
    ]


def test_hub_encodes_one_frame_for_all_clients_and_counts_drops() -> None:
    metrics = Metrics()
    hub = LiveHub(frame_interval_seconds=0.1, client_queue_events=3, snapshot_events=2, heartbeat_seconds=5,
                  max_clients=2, metrics=metrics)
    first, second = hub.connect(), hub.connect()
    assert first is not None and second is not None
    assert hub.connect() is None  # max_clients reached, refusal counted
    assert metrics.total("honeyatlas_requests_refused_total", reason="too_many_clients") == 1

    hub.publish(_events(2))
    hub.flush()
    assert first[0]._frames[0][0] is second[0]._frames[0][0]  # encoded once, shared
    frame = json.loads(first[0]._frames[0][0])
    assert frame["type"] == "events" and len(frame["events"]) == 2 and "raw" not in frame["events"][0]

    hub.publish(_events(5))  # 2 queued + 5 > 3: each client drops what does not fit
    hub.flush()
    assert metrics.total("honeyatlas_events_dropped_total", reason="slow_client") == 14
    hub.disconnect(first[0])
    third = hub.connect()
    assert third is not None
    snapshot = json.loads(third[1])
    assert snapshot["type"] == "snapshot" and len(snapshot["events"]) == 2  # snapshot_events bound


def test_websocket_clients_memory_is_bounded_under_flood(server: RunningServer) -> None:
    """A client that never reads cannot make the server hold more than its queue bound."""
    hub = server.service.hub
    token = server.add_sensor("flood")
    records = cowrie_records_with_public_sources()
    # The client's close waits for the server's close frame, queued behind frames this client
    # never read: without a short close timeout, closing alone takes websockets' 10 s.
    with connect(server.ws_url, additional_headers=server.auth, max_size=None, close_timeout=0.5) as ws:
        ws.recv(timeout=10)
        for _ in range(30):
            post(server, token, ndjson(records))
        time.sleep(0.5)
        queued = max((c._queued_events for c in hub._clients), default=0)
        assert queued <= server.service.config.live.client_queue_events
    assert httpx.get(f"{server.url}api/v1/health").json()["status"] == "ok"


def test_hub_pushes_incident_changes_once_and_keeps_open_ones_for_snapshots() -> None:
    hub = LiveHub(frame_interval_seconds=0.1, client_queue_events=1000, snapshot_events=2, heartbeat_seconds=5,
                  max_clients=2, metrics=Metrics())
    client, _ = hub.connect()  # type: ignore[misc]
    now = datetime.now(UTC)

    def incident(key: str, status: IncidentStatus, members: int = 3) -> Incident:
        steps = tuple(Step(ts=now, sensor=f"s{i}", source=key) for i in range(members))
        return Incident(id=f"inc_{key}", kind=IncidentKind.MULTI_SENSOR, key=key, status=status, opened_at=now,
                        last_seen=now, window_seconds=600, summary="x", event_count=members,
                        sensors=tuple(s.sensor for s in steps), timeline=steps,
                        sources=tuple(f"10.0.{i // 256}.{i % 256}" for i in range(members)), source_count=members)

    hub.publish_incidents([incident("a", IncidentStatus.OPEN), incident("b", IncidentStatus.OPEN, members=900)])
    hub.publish_incidents([incident("a", IncidentStatus.OPEN, members=4)])  # grew before the tick
    hub.flush()
    frame = json.loads(client._frames[-1][0])
    assert frame["type"] == "incidents"
    by_id = {i["id"]: i for i in frame["incidents"]}
    assert len(by_id["inc_a"]["timeline"]) == 4  # the latest state, once
    big = by_id["inc_b"]
    assert len(big["timeline"]) == len(big["sources"]) == 50 and big["source_count"] == 900  # cut for the wire
    hub.publish_incidents([incident("a", IncidentStatus.CLOSED)])
    hub.flush()
    late = hub.connect()
    assert late is not None
    assert [i["id"] for i in json.loads(late[1])["incidents"]] == ["inc_b"]  # closed ones leave the snapshot
