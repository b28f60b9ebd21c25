"""Dashboard rollups: the summary and the histogram equal a brute-force count of the events,
whether the events are folded or not, after a restart, out of time order, and as the window moves."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from honeyatlas.event import Event, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.metrics import Metrics
from honeyatlas.store import duckdb_stats
from honeyatlas.store.duckdb import DuckDBStore

KINDS = [Kind.CONNECTION, Kind.LOGIN_ATTEMPT, Kind.COMMAND, Kind.SCAN]
COLUMNS = {"countries": "country", "asns": "asn", "ips": "src_ip", "ports": "dst_port", "sensors": "sensor"}


def make_store(path: Path, fold_seconds: float = 3600.0) -> DuckDBStore:
    return DuckDBStore(path, max_pending_events=100_000, write_batch_max_events=10_000, metrics=Metrics(),
                       stats_fold_interval_seconds=fold_seconds)


def make_event(rng: random.Random, ts: datetime) -> Event:
    asn = rng.choice([None, 100, 200, 300, 4000, 9])
    geo = None if asn is None else Geo(country=rng.choice(["CN", "US", "DE"]), lat=1.0, lon=2.0, asn=asn,
                                       org=f"org {asn}", precision=Precision.COUNTRY)
    return Event(
        id=new_event_id(), ts=ts, ingest_ts=ts, sensor=rng.choice(["a", "b", "c10", "c9"]), honeypot="cowrie",
        kind=rng.choice(KINDS), outcome=Outcome.UNKNOWN,
        src_ip=None if rng.random() < 0.1 else f"10.0.{(k := int(600 * rng.random() ** 3)) // 256}.{k % 256}",
        dst_port=rng.choice([None, 22, 23, 80, 8080, 9]), src_geo=geo,
    )


def spread(rng: random.Random, now: datetime, count: int) -> list[Event]:
    """Events in no time order: the window, its edges, far past, the future (some beyond 5 min)."""
    offsets = [
        lambda: -rng.uniform(0, 86400),
        lambda: -rng.uniform(0, 120),
        lambda: -86400 - rng.uniform(-30, 30),  # around the start of the 24-hour window
        lambda: -rng.uniform(86400, 3 * 86400),
        lambda: rng.uniform(0, 900),
    ]
    return [make_event(rng, now + timedelta(seconds=rng.choice(offsets)())) for _ in range(count)]


def key_of(event: Event, dim: str) -> Any:
    if dim in ("countries", "asns"):
        return None if event.src_geo is None else getattr(event.src_geo, COLUMNS[dim])
    return getattr(event, COLUMNS[dim])


def brute_summary(events: list[Event], now: datetime, top_n: int) -> dict[str, Any]:
    day, ahead = now - timedelta(hours=24), now + timedelta(minutes=5)
    counts = {
        "1m": sum(now - timedelta(minutes=1) <= e.ts <= ahead for e in events),
        "1h": sum(now - timedelta(hours=1) <= e.ts <= ahead for e in events),
        "24h": sum(day <= e.ts <= ahead for e in events),
    }
    top = {}
    for dim in COLUMNS:
        counted = Counter(key_of(e, dim) for e in events if e.ts >= day and key_of(e, dim) is not None)
        ranked = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
        top[dim] = [{"key": k, "count": n, **({"label": f"org {k}"} if dim == "asns" else {})} for k, n in ranked]
    return {"counts": counts, "top": top}


def brute_histogram(events: list[Event], since: datetime, until: datetime, width: int,
                    by_kind: bool) -> list[tuple[datetime, str | None, int]]:
    epoch, step = datetime(1970, 1, 1, tzinfo=UTC), timedelta(seconds=width)
    counted = Counter(
        (epoch + (e.ts - epoch) // step * step, str(e.kind) if by_kind else None)
        for e in events if since <= e.ts < until
    )
    return sorted((b, k, n) for (b, k), n in counted.items())


async def append_in_batches(store: DuckDBStore, events: list[Event], size: int = 37) -> None:
    await asyncio.gather(*(store.append(events[i : i + size], []) for i in range(0, len(events), size)))


async def check(store: DuckDBStore, events: list[Event], now: datetime) -> None:
    activity = await store.sensor_activity(now)
    for sensor in {e.sensor for e in events}:
        mine = [e for e in events if e.sensor == sensor]
        assert activity[sensor].last_seen == max(e.ingest_ts for e in mine)
        assert activity[sensor].events_1h == sum(e.ingest_ts >= now - timedelta(hours=1) for e in mine)
    for top_n in (1, 3, 10):
        assert msgspec.to_builtins(await store.summary(now, top_n)) == brute_summary(events, now, top_n), top_n
    for since, until, width in (
        (now - timedelta(hours=24), now, 3600),
        (now - timedelta(hours=24, seconds=7), now + timedelta(seconds=31), 60),
        (now - timedelta(days=4), now + timedelta(hours=1), 86400),
        (now - timedelta(seconds=50), now - timedelta(seconds=20), 300),  # inside one minute
    ):
        for by_kind in (False, True):
            got = await store.histogram(since, until, width, by_kind)
            assert got == brute_histogram(events, since, until, width, by_kind), (since, until, width, by_kind)


async def test_answers_equal_a_brute_force_count_folded_or_not_and_after_restart(tmp_path: Path) -> None:
    rng = random.Random(6)
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(microseconds=250_000)
    events = spread(rng, now, 3000)
    path = tmp_path / "events.duckdb"
    store = make_store(path)  # an hour between folds: after the first commit, nothing is folded
    await store.start()
    try:
        await append_in_batches(store, events[:1500])
        folded = await store._snapshot("test", lambda c: c.execute("SELECT folded_rowid FROM stats_state").fetchall())
        assert folded[0][0] < 1000
        await check(store, events[:1500], now)  # mostly from the raw events (not folded yet)
    finally:
        await store.stop()  # folds what is left

    store = make_store(path, fold_seconds=0.05)
    await store.start()
    try:
        await check(store, events[:1500], now)  # entirely from the rollups
        await append_in_batches(store, events[1500:])
        await asyncio.sleep(0.3)
        await check(store, events, now)
    finally:
        await store.stop()

    con = duckdb.connect(str(path))
    try:
        folded = con.execute("SELECT folded_rowid FROM stats_state").fetchall()[0][0]
        assert folded == len(events) - 1  # everything is in the rollups now
    finally:
        con.close()


def test_the_window_moves_on_and_stays_exact(tmp_path: Path) -> None:
    """Fold at later and later wall-clock times: events leave the rollup window as they age."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    events = spread(rng, now, 2000)
    store = make_store(tmp_path / "e.duckdb")

    async def fill() -> None:
        await store.start()
        await append_in_batches(store, events)
        await store.stop()

    asyncio.run(fill())
    con = duckdb.connect(str(tmp_path / "e.duckdb"))
    try:
        for hours in (0, 0.5, 3, 23.99, 26, 80):
            later = now + timedelta(hours=hours)
            duckdb_stats.fold(con, later.replace(tzinfo=None), timedelta(seconds=10))
            got = msgspec.to_builtins(duckdb_stats.summary(con, later.replace(tzinfo=None), 5))
            assert got == brute_summary(events, later, 5), hours
        # a moment the window has already passed: the events in between are added back
        assert msgspec.to_builtins(duckdb_stats.summary(con, now.replace(tzinfo=None), 5)) == brute_summary(events, now, 5)
    finally:
        con.close()


async def test_summary_of_a_past_moment_is_exact_too(tmp_path: Path) -> None:
    rng = random.Random(8)
    now = datetime.now(UTC)
    events = spread(rng, now - timedelta(days=2), 500)
    store = make_store(tmp_path / "e.duckdb", fold_seconds=0.05)
    await store.start()
    try:
        await append_in_batches(store, events)
        await asyncio.sleep(0.2)
        past = now - timedelta(days=2)
        assert msgspec.to_builtins(await store.summary(past, 4)) == brute_summary(events, past, 4)
    finally:
        await store.stop()


@pytest.mark.parametrize("width", [59, 90])
def test_histogram_buckets_are_whole_minutes(tmp_path: Path, width: int) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    try:
        with pytest.raises(ValueError, match="multiple of 60"):
            duckdb_stats.histogram(con, datetime(2026, 1, 1), datetime(2026, 1, 2), width, False)
    finally:
        con.close()


async def test_a_burst_from_a_quiet_source_reaches_the_top_before_it_is_folded(tmp_path: Path) -> None:
    """The source is far below the rollup's candidates; only its unfolded events lift it."""
    rng = random.Random(9)
    now = datetime.now(UTC)
    events = spread(rng, now, 2000)
    path = tmp_path / "e.duckdb"
    store = make_store(path)
    await store.start()
    await append_in_batches(store, events)
    await store.stop()
    store = make_store(path)  # folds everything when it opens, then not for an hour
    await store.start()
    try:
        quiet = next(e for e in events if e.src_ip and e.src_ip.endswith(".250") and e.ts > now - timedelta(hours=23))
        burst = [msgspec.structs.replace(quiet, id=new_event_id(), ts=now - timedelta(seconds=i)) for i in range(400)]
        before = msgspec.to_builtins(await store.summary(now, 3))
        assert quiet.src_ip not in [item["key"] for item in before["top"]["ips"]]
        await store.append(burst, [])
        after = msgspec.to_builtins(await store.summary(now, 3))
        assert after == brute_summary(events + burst, now, 3)
        assert after["top"]["ips"][0]["key"] == quiet.src_ip
    finally:
        await store.stop()


async def test_ties_beyond_the_candidates_are_broken_by_key(tmp_path: Path) -> None:
    """300 sources with two events each: the top-3 are the three smallest addresses, which the
    rollup's first candidates need not hold; the candidate list must grow to see every key."""
    rng = random.Random(10)
    now = datetime.now(UTC)
    events = [
        msgspec.structs.replace(make_event(rng, now - timedelta(minutes=i)), src_ip=f"192.0.2.{i % 150}",
                                src_geo=None, dst_port=None)
        for i in range(300)
    ]
    path = tmp_path / "e.duckdb"
    store = make_store(path)
    await store.start()
    await append_in_batches(store, events)
    await store.stop()
    store = make_store(path)
    await store.start()
    try:
        got = msgspec.to_builtins(await store.summary(now, 3))
        assert got == brute_summary(events, now, 3)
        assert [item["key"] for item in got["top"]["ips"]] == ["192.0.2.0", "192.0.2.1", "192.0.2.10"]
    finally:
        await store.stop()


async def test_a_store_of_schema_4_gains_the_sensor_rollup_from_its_folded_events(tmp_path: Path) -> None:
    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    events = spread(rng, now, 600)
    path = tmp_path / "e.duckdb"
    store = make_store(path)
    await store.start()
    await append_in_batches(store, events)
    await store.stop()  # folds everything
    con = duckdb.connect(str(path))  # back to what migration 4 left
    try:
        con.execute("DROP TABLE stats_sensors")
        con.execute("DROP TABLE address_keys")  # and what migration 6 added
        con.execute("ALTER TABLE events DROP COLUMN src_ip_v4")
        con.execute("DELETE FROM schema_migrations WHERE version >= 5")
    finally:
        con.close()
    store = make_store(path)
    await store.start()
    try:
        await check(store, events, now)
    finally:
        await store.stop()


async def test_the_checkpoint_threshold_is_the_configured_one(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "e.duckdb", max_pending_events=10, write_batch_max_events=10, metrics=Metrics(),
                        checkpoint_threshold_mib=64)
    await store.start()
    try:
        got = await store._snapshot("test", lambda c: c.execute("SELECT current_setting('checkpoint_threshold')").fetchall())
        assert got == [("64.0 MiB",)]
    finally:
        await store.stop()
