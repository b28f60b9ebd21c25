"""Pulling sources in a cluster: two ingest processes follow the same log file, one at a time
(the holder of a lease in the bus). Killing the holder hands the file to the other, which
resumes from the shared position: every line stored exactly once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from honeyatlas.cluster import free_port, wait_for_port
from tests.cluster.common import new_cluster, stored
from tests.engines.nats import NatsServer
from tests.engines.postgres import PostgresServer
from tests.waiting import wait_until

pytestmark = pytest.mark.cluster


def lines(start: int, count: int) -> str:
    now = datetime.now(UTC).isoformat()
    return "".join(json.dumps({"ts": now, "kind": "connection", "src_ip": f"198.51.100.{i % 250 + 1}",
                               "dst_port": 22, "session": f"line-{i}", "action": "connect"}) + "\n"
                   for i in range(start, start + count))


def wait_stored(database: str, count: int) -> tuple[int, int]:
    wait_until(lambda: stored(database, "session")[0] >= count, f"{count} events stored", 60)
    time.sleep(1.0)  # a duplicate would arrive within this
    return stored(database, "session")


def test_one_ingest_process_follows_a_file_and_another_takes_over(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    log = tmp_path / "honeypot.jsonl"
    log.write_text(lines(0, 300))
    cluster = new_cluster(postgres_server, nats_server, tmp_path, partitions=2, bus="lease_ttl_seconds = 2\n",
                          extra=f'\n[file]\nfollow = ["{log}?format=event&sensor=edge-01"]\n')
    database = cluster.database
    cluster.add_sensors(("edge-01", "cowrie", 50.1, 8.7))
    port = free_port()
    ingest = [cluster.role(f"ingest-{i}", "ingest", "--port", str(port), "--reuse-port") for i in range(2)]
    worker = cluster.role("worker", "worker", "--port", "0")
    for role in [worker, *ingest]:
        role.start()
    try:
        wait_for_port(port, 60)
        assert wait_stored(database, 300) == (300, 300)
        holder = next(r for r in ingest if "holding the pulling-sources lease" in r.log.read_text())
        holder.stop(kill=True)
        with log.open("a") as out:
            out.write(lines(300, 200))
        assert wait_stored(database, 500) == (500, 500)
        other = next(r for r in ingest if r is not holder)
        assert "holding the pulling-sources lease" in other.log.read_text()
    finally:
        for role in [*ingest, worker]:
            role.stop()
