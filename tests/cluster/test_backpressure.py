"""An ingest process in front of a full stream: 429 with Retry-After, counted, nothing lost;
once a worker drains the stream, the refused batches go through."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from honeyatlas.cluster import free_port, wait_for_port
from tests.cluster.common import new_cluster, stored
from tests.engines.nats import NatsServer
from tests.engines.postgres import PostgresServer
from tests.waiting import wait_until

pytestmark = pytest.mark.cluster


def test_full_stream_means_429_and_nothing_lost(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    cluster = new_cluster(postgres_server, nats_server, tmp_path, partitions=1, bus="stream_max_messages = 5\n")
    database = cluster.database
    token = cluster.add_sensors(("edge-01", "cowrie", 50.1, 8.7))["edge-01"]
    port = free_port()
    ingest = cluster.role("ingest", "ingest", "--port", str(port))
    worker = cluster.role("worker", "worker", "--port", "0")
    ingest.start()
    try:
        wait_for_port(port, 60)
        cluster.readers(port)  # /metrics is for analysts
        url = f"http://127.0.0.1:{port}/api/v1/ingest/event"
        now = datetime.now(UTC).isoformat()
        accepted, refused = [], []
        with httpx.Client() as client:
            for n in range(12):
                body = json.dumps({"ts": now, "kind": "connection", "src_ip": "198.51.100.7", "session": f"b{n}"})
                response = client.post(url, content=body, headers={"Authorization": f"Bearer {token}",
                                                                    "Idempotency-Key": f"b{n}"})
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1
                    refused.append(body)
                else:
                    assert response.status_code == 200, response.text
                    accepted.append(body)
            assert len(accepted) == 5 and len(refused) == 7  # the stream holds 5 batches, no more
            health = client.get(f"http://127.0.0.1:{port}/api/v1/health").json()
            assert health["role"] == "ingest" and health["store"]["schema_version"] is None  # no database here
            assert client.get(f"http://127.0.0.1:{port}/api/v1/events").status_code == 404  # no queries either
            metrics = client.get(f"http://127.0.0.1:{port}/metrics").text
            assert 'honeyatlas_bus_publish_refused_total{reason="stream_full"}' in metrics
            worker.start()
            for n, body in enumerate(refused, start=len(accepted)):  # the sensor retries later
                for _ in range(100):
                    response = client.post(url, content=body, headers={"Authorization": f"Bearer {token}",
                                                                        "Idempotency-Key": f"b{n}"})
                    if response.status_code == 200:
                        break
                    time.sleep(0.2)
                assert response.status_code == 200
        wait_until(lambda: stored(database)[0] >= 12, "12 events stored", 30)
        assert stored(database) == (12, 12)
    finally:
        worker.stop()
        ingest.stop()


def test_a_late_retry_through_another_ingest_process_is_stored_once(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Past the bus's duplicate window and past the answering process's idempotency cache,
    a batch sent again brings the ids it brought the first time: the store keeps one copy."""
    cluster = new_cluster(postgres_server, nats_server, tmp_path, partitions=2, bus="duplicate_window_seconds = 1\n")
    database = cluster.database
    token = cluster.add_sensors(("edge-01", "cowrie", 50.1, 8.7))["edge-01"]
    ports = [free_port(), free_port()]
    ingest = [cluster.role(f"ingest-{i}", "ingest", "--port", str(port), "--data-dir", str(tmp_path / f"ingest-{i}"))
              for i, port in enumerate(ports)]  # each its own idempotency cache
    worker_port = free_port()
    worker = cluster.role("worker", "worker", "--port", str(worker_port))
    for role in [worker, *ingest]:
        role.start()
    try:
        for port in ports:
            wait_for_port(port, 60)
        cluster.readers(worker_port)  # its /metrics is for analysts
        now = datetime.now(UTC).isoformat()
        body = "\n".join(json.dumps({"ts": now, "kind": "login_attempt", "src_ip": f"198.51.100.{i}",
                                     "username": "root", "password": f"pw{i}", "session": f"s{i}"}) for i in range(20))
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-1"}
        first = httpx.post(f"http://127.0.0.1:{ports[0]}/api/v1/ingest/event", content=body, headers=headers)
        assert first.status_code == 200 and first.json()["events"] == 20
        wait_until(lambda: stored(database)[0] >= 20, "the first copy stored", 30)
        time.sleep(1.5)  # past the bus's duplicate window
        again = httpx.post(f"http://127.0.0.1:{ports[1]}/api/v1/ingest/event", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["events"] == 20
        wait_until(lambda: 'reason="already_stored"} 20' in httpx.get(f"http://127.0.0.1:{worker_port}/metrics").text
                   or stored(database)[0] > 20, "the worker to take the second copy", 15, 0.2)
        assert stored(database) == (20, 20)
        metrics = httpx.get(f"http://127.0.0.1:{worker_port}/metrics").text
        assert 'honeyatlas_correlation_evictions_total{detector="replayed_keyed_items"} 0' in metrics
    finally:
        for role in [*ingest, worker]:
            role.stop()
