"""The PostgreSQL store's keyed rollups (postgres_keyed.py) against a real server: a window's
cut into days, hours and raw edges covers it once; the threshold algorithm is exact at every
depth, with two shards and ties; a store of schema 2 gains the rollups from its events;
retention keeps them exact."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest

from honeyatlas.clock import ceil_to, floor_to
from honeyatlas.event import Event, Kind, Outcome
from honeyatlas.store import postgres_keyed, postgres_stats
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.postgres import PostgresStore
from tests.engines.postgres import PostgresServer
from tests.store.test_postgres import make_pg, varied_events
from tests.store.test_window_summary import brute_window


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


def spread(events: list[Event], rng: random.Random, days: int) -> list[Event]:
    """The events moved back by 0..days-1 whole days, at random, a third of them from dionaea."""
    return [msgspec.structs.replace(e, ts=e.ts - timedelta(days=rng.randrange(days)),
                                    honeypot=rng.choice(["cowrie", "cowrie", "dionaea"])) for e in events]


async def stored(pg_url: str, events: list[Event]) -> None:
    """`events` stored in the database by a store started and stopped for it."""
    store = make_pg(pg_url)
    await store.start()
    try:
        await store.append(events, [])
    finally:
        await store.stop()


def windows(now: datetime) -> list[EventFilter]:
    odd = now.replace(minute=17, second=3, microsecond=41)
    found = [EventFilter(since=now - timedelta(hours=24), until=now),
             EventFilter(since=now - timedelta(days=6), until=now + timedelta(hours=1)),
             EventFilter(since=odd - timedelta(days=3, hours=5), until=odd - timedelta(hours=2)),
             EventFilter(since=odd - timedelta(minutes=50), until=odd - timedelta(minutes=3)),
             EventFilter(since=(now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0),
                         until=now.replace(hour=0, minute=0, second=0, microsecond=0))]
    wide = found[1]
    found += [msgspec.structs.replace(wide, kinds=(Kind.LOGIN_ATTEMPT,)),
              msgspec.structs.replace(found[0], kinds=(Kind.COMMAND, Kind.FILE_DOWNLOAD)),
              msgspec.structs.replace(found[2], outcomes=(Outcome.SUCCESS,)),
              msgspec.structs.replace(wide, kinds=(Kind.LOGIN_ATTEMPT,), outcomes=(Outcome.FAILURE, Outcome.UNKNOWN)),
              msgspec.structs.replace(wide, protocols=("telnet",)),
              msgspec.structs.replace(found[2], honeypots=("dionaea",), protocols=("ssh", "telnet")),
              msgspec.structs.replace(found[0], honeypots=("cowrie",), kinds=(Kind.SCAN,))]
    return found


def test_a_window_is_cut_into_whole_days_whole_hours_and_raw_edges_once() -> None:
    rng = random.Random(5)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    hour, day = timedelta(hours=1), timedelta(days=1)

    def hours_of(ranges: list[tuple[datetime, datetime | None]], step: timedelta, horizon: datetime) -> Counter[datetime]:
        found: Counter[datetime] = Counter()
        for a, b in ranges:
            assert a == floor_to(a, step) and (b is None or (b == floor_to(b, step) and a < b))
            moment = a
            while moment < (b or horizon):
                found[moment] += 1
                moment += hour
        return found

    for _ in range(3000):
        since = base + timedelta(seconds=rng.choice([0, rng.randrange(0, 9 * 86400), 3600 * rng.randrange(200)]))
        length = timedelta(seconds=rng.choice([0, 1, 3599, 3600, 86400, 13 * 3600, rng.randrange(1, 8 * 86400)]))
        until = None if rng.random() < 0.2 else since + length
        if until is not None and until <= since:
            continue
        cut = postgres_keyed.spans(since, until)
        first, last = ceil_to(since, hour), None if until is None else floor_to(until, hour)
        if last is not None and first >= last:
            assert cut == postgres_keyed.Spans([], [], [(since, until)])
            continue
        assert cut.raw == [(since, first)] + ([] if until is None else [(last, until)])
        horizon = (last or first) + 20 * day
        covered = hours_of(cut.days, day, horizon) + hours_of(cut.hours, hour, horizon)
        covered.subtract(hours_of(cut.minus, hour, horizon))
        covered = +covered  # each whole hour of the window once, nothing outside it
        assert all(n == 1 for n in covered.values())
        assert sorted(covered) == [first + k * hour for k in range(int(((last or horizon) - first) / hour))]
        assert not cut.minus or all(h in hours_of(cut.days, day, horizon) for h in hours_of(cut.minus, hour, horizon))
        assert len(cut.hours) + len(cut.minus) <= 4


async def test_the_threshold_algorithm_is_exact_at_every_depth_with_two_shards(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(31)
    now = datetime.now(UTC)
    events = spread(varied_events(rng, now, 4000), rng, 6)
    first, second = make_pg(pg_url, shard=0), make_pg(pg_url, shard=1)
    await asyncio.gather(first.start(), second.start())
    try:
        await asyncio.gather(*(first.append(events[i : i + 400], []) for i in range(0, 2400, 400)),
                             *(second.append(events[i : i + 400], []) for i in range(2000, 4000, 400)))
        shards = await first._internal_read("SELECT DISTINCT shard FROM stats_days ORDER BY 1")
        assert shards == [(0,), (1,)]
        for f in windows(now):
            for top_n in (1, 3, 6):
                expected = brute_window(events, f, top_n)
                # depth 1: lists deepen round after round; rounds 0: every list summed whole
                for depth, rounds in ((1, 5), (2, 1), (None, postgres_keyed.ROUNDS), (None, 0)):
                    async with first._snapshot("window_summary") as read:
                        got = await postgres_stats.window_summary(read, f, top_n, True, depth, rounds)
                    assert msgspec.to_builtins(got) == expected, (f, top_n, depth, rounds)
        monkeypatch.setattr(postgres_keyed, "_candidates_cap", lambda top_n: 2)  # a round gives up: summed whole
        for f in windows(now):
            async with first._snapshot("window_summary") as read:
                got = await postgres_stats.window_summary(read, f, 3, True, 1, 3)
            assert msgspec.to_builtins(got) == brute_window(events, f, 3), f
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_a_store_of_schema_2_gains_the_keyed_rollups_from_its_events(pg_url: str) -> None:
    rng = random.Random(32)
    now = datetime.now(UTC)
    events = spread(varied_events(rng, now, 1500), rng, 4)
    await stored(pg_url, events)
    with psycopg.connect(pg_url, autocommit=True) as con:  # back to schema 2: the old hourly rollup, no stats_days
        for statement in ("DROP TABLE stats_hours", "DROP TABLE stats_days", "DROP INDEX events_src_asn",
                          "DELETE FROM schema_migrations WHERE version = 3",
                          'CREATE TABLE stats_hours (dim text COLLATE "C" NOT NULL, hour timestamptz NOT NULL, '
                          'key text COLLATE "C" NOT NULL, shard smallint NOT NULL, label text, n bigint NOT NULL, '
                          "PRIMARY KEY (dim, hour, key, shard))"):
            con.execute(statement)  # type: ignore[arg-type]
    store = make_pg(pg_url)
    await store.start()  # migration 3
    try:
        assert await store._internal_read("SELECT max(version) FROM schema_migrations") == [(3,)]
        for f in windows(now):
            assert msgspec.to_builtins(await store.window_summary(f, 4)) == brute_window(events, f, 4), f
    finally:
        await store.stop()


async def test_retention_keeps_the_keyed_rollups_exact(pg_url: str) -> None:
    rng = random.Random(33)
    now = datetime.now(UTC)
    events = spread(varied_events(rng, now, 2000), rng, 5)
    await stored(pg_url, events)  # retention off: a partition for each day
    store: PostgresStore = make_pg(pg_url, retention_days=2)
    await store.start()
    try:
        await store.drop_expired_partitions(now)
        cutoff = datetime.combine((now - timedelta(days=2)).date(), datetime.min.time(), tzinfo=UTC)
        kept = [e for e in events if e.ts >= cutoff]
        assert len(kept) < len(events) - 300
        for f in windows(now):
            assert msgspec.to_builtins(await store.window_summary(f, 4)) == brute_window(kept, f, 4), f
        assert await store._internal_read("SELECT count(*) FROM stats_days WHERE bucket < %s", [cutoff]) == [(0,)]
    finally:
        await store.stop()
