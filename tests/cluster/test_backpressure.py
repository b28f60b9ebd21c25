"""An ingest process in front of a full stream: 429 with Retry-After, counted, nothing lost;
once a worker drains the stream, the refused batches go through."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from honeyatlas.cluster import RoleProcess, cluster_config, free_port, wait_for_port
from honeyatlas.store.postgres_registry import PostgresSensorRegistry
from tests.cluster.common import stored
from tests.engines.nats import NatsServer
from tests.engines.postgres import PostgresServer
from tests.waiting import wait_until

pytestmark = pytest.mark.cluster


def test_full_stream_means_429_and_nothing_lost(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    database = postgres_server.new_database()
    config = tmp_path / "cluster.toml"
    config.write_text(cluster_config(storage_url=database, bus_url=nats_server.url, data_dir=tmp_path / "data",
                                     partitions=1).replace("partitions = 1\n", "partitions = 1\nstream_max_messages = 5\n")
                      + "\n[geoip]\nsearch_city_db = false\n")
    registry = PostgresSensorRegistry(database)
    registry.open()
    _, token = registry.add("edge-01", honeypot="cowrie", lat=50.1, lon=8.7)
    registry.close()
    common = ["serve", "--config", str(config), "--host", "127.0.0.1"]
    port = free_port()
    ingest = RoleProcess("ingest", [*common, "--role", "ingest", "--port", str(port)], tmp_path / "ingest.log")
    worker = RoleProcess("worker", [*common, "--role", "worker", "--port", "0"], tmp_path / "worker.log")
    ingest.start()
    try:
        wait_for_port(port, 60)
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
