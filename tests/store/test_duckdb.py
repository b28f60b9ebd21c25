"""The DuckDB store: durable appends, reopen, versioned migrations, concurrent reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from honeyatlas.errors import StoreError
from honeyatlas.event import Event, Flag, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.metrics import Metrics
from honeyatlas.store import DeadLetter, EventQuery, TopItem
from honeyatlas.store.duckdb import SCHEMA_VERSION, DuckDBStore
from honeyatlas.store.filters import EventFilter


def make_store(path: Path, **kwargs: int) -> DuckDBStore:
    return DuckDBStore(path, max_pending_events=kwargs.get("max_pending", 1000),
                       write_batch_max_events=kwargs.get("batch", 100), metrics=Metrics())


def event(i: int, ts: datetime) -> Event:
    return Event(
        id=new_event_id(), ts=ts, ingest_ts=ts, sensor=f"s{i % 3}", honeypot="cowrie", kind=Kind.LOGIN_ATTEMPT,
        outcome=Outcome.FAILURE, src_ip=f"8.8.{i % 5}.{i}", src_port=40000 + i, dst_port=22, username="root",
        password=f"pw{i}", src_geo=Geo(country="US", lat=37.75, lon=-97.82, asn=15169, org="GOOGLE",
                                       precision=Precision.COUNTRY),
        dst_geo=Geo(lat=1.0, lon=2.0, precision=Precision.SENSOR), flags=(Flag.DEMO,), warnings=("w",),
        raw='{"x": 1}',
    )


async def test_append_survives_reopen_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    now = datetime.now(UTC).replace(microsecond=123456)
    written = [event(i, now - timedelta(seconds=i)) for i in range(250)]
    store = make_store(path)
    await store.start()
    await asyncio.gather(*(store.append(written[i : i + 10], []) for i in range(0, 250, 10)))
    await store.append([], [DeadLetter(ts=now, source="http", sensor="s0", format="cowrie", index=3,
                                       reason="invalid JSON", raw=b"{bad")])
    assert store.pending_events == 0
    await store.stop()

    reopened = make_store(path)
    await reopened.start()
    try:
        assert await reopened.schema_version() == SCHEMA_VERSION
        found = await reopened.query_events(EventQuery(limit=1000))
        assert sorted(found, key=lambda e: e.id) == sorted(written, key=lambda e: e.id)
        assert (await reopened.dead_letters(10))[0].raw == b"{bad"
        only = await reopened.query_events(EventQuery(filter=EventFilter(sensors=("s1",), countries=("US",)), limit=1000))
        assert len(only) == len([e for e in written if e.sensor == "s1"])
        summary = await reopened.summary(now, 3)
        assert summary.counts.last_day == 250
        assert summary.top["asns"] == [TopItem(15169, 250, "GOOGLE")]
    finally:
        await reopened.stop()


async def test_reads_run_while_the_writer_writes(tmp_path: Path) -> None:
    store = make_store(tmp_path / "e.duckdb", max_pending=100_000, batch=5000)
    await store.start()
    try:
        now = datetime.now(UTC)
        writes = [store.append([event(i, now) for i in range(500)], []) for _ in range(20)]
        reads = [store.summary(now, 5) for _ in range(20)]
        results = await asyncio.gather(*writes, *reads)
        counts = [r.counts.last_day for r in results[20:]]
        assert all(0 <= c <= 10_000 for c in counts)
        assert (await store.summary(now, 5)).counts.last_day == 10_000
    finally:
        await store.stop()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.duckdb"
    store = make_store(path)
    await store.start()
    await store.stop()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(StoreError, match="upgrade honeyatlas"):
        await make_store(path).start()


async def test_backpressure_bound(tmp_path: Path) -> None:
    store = make_store(tmp_path / "e.duckdb", max_pending=10)
    assert store.has_room_for(10) and not store.has_room_for(11)
