"""Expensive reads are bounded, on both backends: the query timeout cancels a read and is
counted; read slots queue reads and refuse them when the queue is full; a cancelled caller
stops its query; the reads ingest and health wait for are never queued behind the API's;
DuckDB's memory limit and threads come from the config. Over HTTP: a refused or timed-out
read answers 503 with its reason and Retry-After, and a flood of expensive reads against a
server taking idempotent ingest leaves every batch acknowledged and every read answered
cleanly (the reduced form of the benchmark in benchmarks/read_flood.py)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from honeyatlas.errors import QueryTimeout, ReadsBusy, StoreError
from honeyatlas.metrics import Metrics
from honeyatlas.store.duckdb import DuckDBStore
from honeyatlas.store.postgres import PostgresStore
from tests.conftest import RunningServer, ServerStarter
from tests.waiting import wait_until, wait_until_async

# Reads that cannot finish within any timeout of these tests, whatever the machine.
ENDLESS = {
    "duckdb": "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE (a.range + b.range) % 7 = 3",
    "postgresql": "SELECT pg_sleep(600)",
}
Open = Callable[..., Any]


@pytest.fixture
async def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Open]:
    """`await open_store(**settings)`: a started store on this test's backend, stopped after."""
    opened: list[Any] = []

    async def start(**settings: Any) -> Any:
        common = {"max_pending_events": 10_000, "write_batch_max_events": 1_000, "metrics": Metrics(), **settings}
        if backend == "duckdb":
            store: Any = DuckDBStore(tmp_path / f"events-{len(opened)}.duckdb", **common)
        else:
            common.pop("memory_limit_mib", None)
            common.pop("threads", None)
            url = request.getfixturevalue("postgres_server").new_database()
            store = PostgresStore(url, **common)
        await store.start()
        opened.append(store)
        return store

    yield start
    for store in opened:
        await store.stop()


async def test_a_read_past_the_timeout_is_cancelled_counted_and_the_store_reads_on(open_store: Open, backend: str
                                                                                   ) -> None:
    metrics = Metrics()
    store = await open_store(query_timeout_seconds=0.3, metrics=metrics)
    began = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        await store._read("attacker_summaries", ENDLESS[backend], [])
    assert time.monotonic() - began < 60  # cancelled, not run to its end
    assert "storage.query_timeout_seconds (0.3 s)" in str(caught.value) and "\n" not in str(caught.value)
    assert metrics.total("honeyatlas_queries_timed_out_total", query="attacker_summaries") == 1
    assert isinstance(caught.value, StoreError)
    # The cursor (or connection) it ran on serves the next reads.
    for _ in range(3):
        assert await store.schema_version() >= 1
        assert (await store.summary(datetime.now(UTC), 5)).counts.last_day == 0


async def test_reads_queue_behind_the_slots_are_refused_when_the_queue_is_full_and_ingest_reads_pass(
    open_store: Open, backend: str
) -> None:
    metrics = Metrics()
    store = await open_store(query_timeout_seconds=600, max_concurrent_reads=1, max_queued_reads=1, metrics=metrics)
    slow = asyncio.create_task(store._read("histogram", ENDLESS[backend], []))
    await wait_until_async(lambda: store._reads.running == 1, "the slow read to take the only slot")
    queued = asyncio.create_task(store.summary(datetime.now(UTC), 5))
    await wait_until_async(lambda: store._reads.waiting == 1, "the second read to wait")

    with pytest.raises(ReadsBusy) as refused:
        await store.attacker_profile("192.0.2.1", 10)
    assert "1 reads running and 1 waiting" in str(refused.value) and refused.value.retry_after_seconds == 600
    assert metrics.total("honeyatlas_queries_refused_total", query="attacker_profile", reason="queue_full") == 1

    # What ingest and health wait for has its own lane: answered while every slot is taken.
    assert await asyncio.wait_for(store.find_receipt("s1", "k1"), 30) is None
    assert await asyncio.wait_for(store.schema_version(), 30) >= 1
    assert not queued.done()

    # A caller that goes away (a client disconnecting) stops its query and frees the slot.
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    summary = await asyncio.wait_for(queued, 60)
    assert summary.counts.last_day == 0
    assert (store._reads.running, store._reads.waiting) == (0, 0)


async def test_a_read_that_waits_longer_than_the_timeout_is_refused(open_store: Open, backend: str) -> None:
    metrics = Metrics()
    store = await open_store(query_timeout_seconds=0.5, max_concurrent_reads=1, metrics=metrics)
    slow = asyncio.create_task(store._read("histogram", ENDLESS[backend], []))
    await wait_until_async(lambda: store._reads.running == 1, "the slow read to take the only slot")
    # Either it never got the slot in time, or it got it as the slow read was cancelled: both
    # are bounded answers; the slow read itself always times out.
    try:
        await store.summary(datetime.now(UTC), 5)
    except ReadsBusy as exc:
        assert "no read slot free within 0.5 s" in str(exc)
        assert metrics.total("honeyatlas_queries_refused_total", reason="wait_timeout") == 1
    with pytest.raises(QueryTimeout):
        await slow


@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)  # DuckDB's own settings
async def test_duckdb_gets_its_memory_limit_and_threads_from_the_config(open_store: Open) -> None:
    store = await open_store(memory_limit_mib=64, threads=1)
    rows = await store._snapshot("test", lambda cursor: cursor.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')").fetchall())
    assert rows == [("64.0 MiB", 1)]
    metrics = Metrics()
    small = await open_store(memory_limit_mib=16, threads=1, metrics=metrics)
    with pytest.raises(StoreError, match=r"storage\.duckdb_memory_limit_mib"):  # a 503, not a 500
        await small._read("attacker_summaries", "SELECT list(range ORDER BY -range) FROM range(20000000)", [])
    assert metrics.total("honeyatlas_queries_failed_total", reason="out_of_memory") == 1


@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)  # PostgreSQL reads run on its server
async def test_duckdb_api_reads_run_niced_and_ingest_reads_do_not(open_store: Open) -> None:
    def niceness(cursor: Any) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, 0)
    store = await open_store(read_niceness=7)
    assert await store._snapshot("test", niceness) == min(19, base + 7)
    assert await store._run(store._internal_pool, "test", niceness, None) == base  # the receipts' lane
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the event loop's thread


# --------------------------------------------------------------------------- over HTTP


def test_a_refused_read_answers_503_with_its_reason_and_retry_after(start_on_backend: ServerStarter, backend: str,
                                                                   tmp_path: Path) -> None:
    server, stop = start_on_backend(tmp_path / "data", storage={
        "query_timeout_seconds": 120, "max_concurrent_reads": 1, "max_queued_reads": 0})
    store: Any = server.service.store
    slow = asyncio.run_coroutine_threadsafe(store._read("histogram", ENDLESS[backend], []), server.loop)
    try:
        wait_until(lambda: store._reads.running == 1, "the slow read to take the only slot")
        for path in ("api/v1/stats/summary", "api/v1/attackers/192.0.2.1", "api/v1/iocs?format=csv"):
            answer = httpx.get(server.url + path, timeout=60)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["retry-after"] == "120"
            detail = answer.json()["detail"]
            assert detail.startswith("query ") and "refused" in detail, detail
        assert httpx.get(server.url + "api/v1/health", timeout=60).status_code == 200  # not queued
        metrics = httpx.get(server.url + "metrics", timeout=60).text
        assert 'honeyatlas_queries_refused_total{query="summary",reason="queue_full"} 1' in metrics
    finally:
        slow.cancel()  # the query stops, then the server
        wait_until(lambda: store._reads.running == 0, "the slow read to stop")
        stop()


def _flood(server: RunningServer, token: str, seconds: float) -> tuple[Counter[int], list[str], Counter[str]]:
    """Idempotent ingest on one thread, expensive reads on three, for `seconds`: the ingest
    statuses, any ingest failure, and the read answers (status and detail)."""
    ingest: Counter[int] = Counter()
    failures: list[str] = []
    reads: Counter[str] = Counter()
    stop = threading.Event()
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expensive = [
        f"api/v1/stats/histogram?bucket_seconds=300&by_kind=true&since={since}",
        "api/v1/iocs?format=csv&limit=100000",
        "api/v1/stix",
        "api/v1/attackers/203.0.113.7?limit=1000",
        "api/v1/stats/summary?top=100",
        f"api/v1/malware/{'ab' * 32}?limit=1000",
    ]

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                n += 1
                body = "\n".join(json.dumps({
                    "eventid": "cowrie.login.failed", "timestamp": datetime.now(UTC).isoformat(),
                    "src_ip": f"203.0.113.{n % 50}", "src_port": 40000, "dst_port": 22, "session": f"s{n}-{i}",
                    "username": "root", "password": f"pw{i}"}) for i in range(50))
                try:
                    answer = client.post("api/v1/ingest/cowrie", content=body, headers={
                        "Authorization": f"Bearer {token}", "Idempotency-Key": f"flood-{n}"})
                    ingest[answer.status_code] += 1
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

    def read(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            n = offset
            while not stop.is_set():
                n += 1
                answer = client.get(expensive[n % len(expensive)])
                if answer.status_code == 503:
                    detail = answer.json().get("detail", "")
                    assert detail and answer.headers.get("retry-after"), answer.text
                    reads["503 " + ("refused" if "refused" in detail else "timeout" if "ran longer" in detail
                                    else detail)] += 1
                else:
                    reads[str(answer.status_code)] += 1

    threads = [threading.Thread(target=send), *(threading.Thread(target=read, args=(i,)) for i in range(3))]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a client hung"
    return ingest, failures, reads


def test_a_flood_of_expensive_reads_leaves_ingest_acknowledged_and_every_read_answered(
    start_on_backend: ServerStarter, tmp_path: Path
) -> None:
    server, stop = start_on_backend(tmp_path / "data", storage={
        "query_timeout_seconds": 2, "max_concurrent_reads": 1, "max_queued_reads": 1})
    try:
        token = server.add_sensor("flood-1")
        ingest, failures, reads = _flood(server, token, seconds=8)
        assert not failures, failures[:5]
        assert ingest[200] >= 5, ingest  # acknowledged all along, not starved
        assert set(reads) <= {"200", "404", "503 refused", "503 timeout"}, reads  # never a 500, never a hang
        assert reads["200"] > 0, reads
        metrics = httpx.get(server.url + "metrics", timeout=60).text
        refused = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith("honeyatlas_queries_refused_total{"))
        assert refused == reads["503 refused"]
    finally:
        stop()
