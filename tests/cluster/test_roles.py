"""The roles end to end: 2 ingest, 2 workers and 1 web process over a real nats-server -js and
a real PostgreSQL, fed a labelled honeynet trace by sensors that retry with their
idempotency keys, while a worker and an ingest process are killed with SIGKILL mid-stream.

Checks: every acknowledged event stored exactly once, nothing stored that was not sent, and
the summary and the incidents equal to those of one `--role all` process (DuckDB) fed the
same input. The trace comes from `honeyatlas simulate` (planted multi-sensor attackers,
scans, campaigns and epidemics in a background of unrelated sources), its times moved to
the last hours so the 24 h summary covers it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from honeyatlas.cluster import RoleProcess, free_port, role_commands, wait_for_port
from honeyatlas.config import load_config
from honeyatlas.sources import simulate
from tests.cluster.common import new_cluster, stored
from tests.conftest import start_server
from tests.engines.nats import NatsServer
from tests.engines.postgres import PostgresServer
from tests.waiting import wait_until

pytestmark = pytest.mark.cluster

CHUNK_RECORDS = 400  # consecutive trace records sent together (~40 s of event time)
DURATION_SECONDS = 5000  # of event time: ~50,000 events at the baseline rate


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("trace")
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    options = simulate.SimulationOptions(scenario="baseline", sensors=None, rate_events_per_second=None,
                                         duration_seconds=DURATION_SECONDS, seed=11, start=start)
    simulate.write_simulation(simulate.plan_simulation(options, load_config(environ={}).correlation), out)
    lines = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    sensors = json.loads((out / "sensors.json").read_text())["sensors"]
    return lines, sensors


def batches(lines: list[dict[str, Any]]) -> Iterator[list[tuple[str, str, list[dict[str, Any]]]]]:
    """Chunks of consecutive records, each as per-sensor batches (sensor, idempotency key, records):
    senders finish a chunk before the next, so no sensor runs ahead in event time."""
    for number, start in enumerate(range(0, len(lines), CHUNK_RECORDS)):
        by_sensor: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines[start : start + CHUNK_RECORDS]:
            by_sensor[line["sensor"]].append(line["record"])
        yield [(sensor, f"{sensor}-{number}", records) for sensor, records in sorted(by_sensor.items())]


def send(client: httpx.Client, url: str, token: str, key: str, records: list[dict[str, Any]]) -> int:
    """POST until answered 200, with the same key; returns the events the answer counts."""
    body = "\n".join(json.dumps(r) for r in records)
    for _ in range(600):
        try:
            response = client.post(url, content=body, headers={"Authorization": f"Bearer {token}",
                                                                "Idempotency-Key": key}, timeout=30)
        except httpx.TransportError:  # the ingest process died under us: retry, as a forwarder does
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return int(response.json()["events"])
        assert response.status_code in (409, 429, 503), response.text
        time.sleep(float(response.headers.get("Retry-After", "0.2")) / 5)
    raise AssertionError(f"batch {key} never accepted")


def answers(url: str) -> tuple[dict[str, Any], set[tuple[str, str, frozenset[str], frozenset[str]]]]:
    summary = httpx.get(f"{url}api/v1/stats/summary?top=20", timeout=30).json()
    incidents = httpx.get(f"{url}api/v1/incidents?limit=1000", timeout=30).json()["incidents"]
    merged: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for incident in incidents:  # an incident may close and open again as a new one: compare per key
        sensors, sources = merged.setdefault((incident["kind"], incident["key"]), (set(), set()))
        sensors.update(incident["sensors"])
        sources.update(incident["sources"])
    found = {(kind, key, frozenset(se), frozenset(so)) for (kind, key), (se, so) in merged.items()}
    return {"24h": summary["counts"]["24h"], "top": summary["top"]}, found


def test_cluster_stores_everything_once_through_kills_and_answers_like_one_process(
    trace: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    postgres_server: PostgresServer,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    lines, sensors = trace
    assert len(lines) >= 50_000
    # A short ack wait, so the killed worker's batches come again within the test.
    cluster = new_cluster(postgres_server, nats_server, tmp_path, partitions=8, bus="ack_wait_seconds = 3.0\n")
    database, config = cluster.database, cluster.config
    tokens = cluster.add_sensors(*((s["name"], s["honeypot"], s["lat"], s["lon"]) for s in sensors))

    ingest_port, web_port = free_port(), free_port()
    roles = role_commands(config, ingest=2, workers=2, ingest_port=ingest_port, web_port=web_port,
                          host="127.0.0.1", demo=False, logs=tmp_path)
    by_name: dict[str, RoleProcess] = {r.name: r for r in roles}
    for role in roles:
        role.start()
    try:
        wait_for_port(web_port, 60)
        wait_for_port(ingest_port, 60)
        cluster.readers(web_port)
        ingest_url = f"http://127.0.0.1:{ingest_port}/api/v1/ingest/event"
        chunks = list(batches(lines))
        acknowledged = 0
        kill_worker_at, kill_ingest_at = len(chunks) // 3, len(chunks) // 2
        local = threading.local()

        def post(item: tuple[str, str, list[dict[str, Any]]]) -> int:
            if not hasattr(local, "client"):
                local.client = httpx.Client()
            sensor, key, records = item
            return send(local.client, ingest_url, tokens[sensor], key, records)

        with ThreadPoolExecutor(8) as pool:
            for number, chunk in enumerate(chunks):
                if number == kill_worker_at:
                    by_name["worker-1"].stop(kill=True)
                    restart = threading.Timer(2.0, by_name["worker-1"].start)
                    restart.start()
                if number == kill_ingest_at:
                    by_name["ingest-0"].stop(kill=True)
                acknowledged += sum(pool.map(post, chunk))
        assert acknowledged == len(lines)  # the event format: one event per record

        wait_until(lambda: stored(database)[0] >= len(lines), "every acknowledged event stored", 180, 0.5)
        time.sleep(2 * 3.0)  # a redelivery after the ack wait must not add anything
        assert stored(database) == (len(lines), len(lines)), "every acknowledged event exactly once"
        with psycopg.connect(database) as con:
            rows = con.execute("SELECT sensor, ts, src_ip, kind, session, action FROM events").fetchall()
        sent = sorted((ln["sensor"], datetime.fromisoformat(ln["record"]["ts"].replace("Z", "+00:00")),
                       ln["record"].get("src_ip"), ln["record"]["kind"], ln["record"].get("session"),
                       ln["record"].get("action")) for ln in lines)
        assert sorted(rows) == sent, "nothing stored that was not sent"
        time.sleep(2.0)  # incident growth is saved at most once a second
        cluster_summary, cluster_incidents = answers(f"http://127.0.0.1:{web_port}/")
    finally:
        for role in reversed(roles):
            role.stop()

    reference, stop = start_server(tmp_path / "reference")
    try:
        ref_tokens = {s["name"]: reference.add_sensor(s["name"], s["honeypot"], (s["lat"], s["lon"])) for s in sensors}
        with httpx.Client() as client:
            for chunk in batches(lines):
                for sensor, key, records in chunk:
                    send(client, reference.url + "api/v1/ingest/event", ref_tokens[sensor], key, records)
        time.sleep(2.0)
        all_summary, all_incidents = answers(reference.url)
    finally:
        stop()
    assert cluster_summary == all_summary
    only_cluster, only_all = cluster_incidents - all_incidents, all_incidents - cluster_incidents
    assert not only_cluster and not only_all, f"cluster only: {sorted(only_cluster)}; all only: {sorted(only_all)}"
    assert len(all_incidents) > 50  # the planted ones are there
    assert {"multi_sensor", "epidemic", "campaign"} <= {kind for kind, *_ in all_incidents}
