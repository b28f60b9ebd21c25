"""The PostgreSQL store against a real server: every read answers exactly as DuckDB's on the same
events; appends are idempotent and atomic; shards, retention, odd timestamps, errors; the registry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from honeyatlas.errors import RegistryError, StoreError
from honeyatlas.event import Event, Flag, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.store import DeadLetter, EventQuery, IncidentQuery, Receipt
from honeyatlas.store.duckdb import DuckDBStore
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.postgres import PostgresStore
from honeyatlas.store.postgres_registry import PostgresSensorRegistry
from honeyatlas.store.registry import HPFEEDS_CHANNELS
from tests.engines.postgres import PostgresServer
from tests.store.test_stats_rollups import brute_histogram, brute_summary

SENSORS = ["fra-1", "nyc-2", "sgp-3", "Ams-4", "b10"]
ASNS = {4134: "CN", 16509: "US", 14061: "DE", 9: "BR"}  # organisation: f"org {asn}", as brute_summary expects
KINDS = [Kind.CONNECTION, Kind.LOGIN_ATTEMPT, Kind.LOGIN_ATTEMPT, Kind.COMMAND, Kind.SCAN, Kind.FILE_DOWNLOAD]
SHAS = [f"{i:064x}" for i in (0xABC, 0xDEF, 0x123)]


def make_pg(url: str, **kwargs: Any) -> PostgresStore:
    return PostgresStore(url, metrics=kwargs.pop("metrics", Metrics()), max_pending_events=100_000,
                         write_batch_max_events=5_000, **kwargs)


def varied_events(rng: random.Random, now: datetime, count: int) -> list[Event]:
    """Events over ~30 hours (some past the 24-hour edge, some up to 15 minutes ahead),
    arriving in list order (`ingest_ts` grows with the index)."""
    events = []
    for i in range(count):
        offset = rng.choice([-rng.uniform(0, 86400), -rng.uniform(0, 600), -86400 - rng.uniform(-40, 40),
                             -rng.uniform(86400, 30 * 3600), rng.uniform(0, 900)])
        asn = rng.choice([None, *ASNS])
        src_geo = None if asn is None else Geo(country=ASNS[asn], city=rng.choice([None, "Town"]), lat=1.5,
                                               lon=-2.25, asn=asn, org=f"org {asn}", precision=Precision.CITY)
        kind = rng.choice(KINDS)
        k = int(300 * rng.random() ** 3)
        ip = rng.choice([f"203.0.{k // 256}.{k % 256}", f"203.0.{k // 256}.{k % 256}", "10.1.2.3", None])
        flags = (Flag.PRIVATE_SOURCE,) if ip == "10.1.2.3" else rng.choice([(), (), (Flag.DEMO,)])
        login = kind is Kind.LOGIN_ATTEMPT
        events.append(Event(
            id=new_event_id(), ts=now + timedelta(seconds=offset),
            ingest_ts=now - timedelta(hours=2) + timedelta(milliseconds=7 * i), sensor=rng.choice(SENSORS),
            honeypot="cowrie", kind=kind, outcome=rng.choice(list(Outcome)) if login else Outcome.UNKNOWN,
            src_ip=ip, src_port=rng.randrange(1024, 65535), dst_port=rng.choice([None, 22, 23, 80, 2222, 9]),
            protocol=rng.choice([None, "ssh", "telnet"]), session=f"s{rng.randrange(50)}",
            username=rng.choice(["root", "admin", None]) if login else None,
            password=rng.choice(["123456", "admin", None]) if login else None,
            command=rng.choice(["uname -a", "cat /proc/cpuinfo"]) if kind is Kind.COMMAND else None,
            url="http://198.51.100.7/x.sh" if kind is Kind.FILE_DOWNLOAD else None,
            sha256=rng.choice(SHAS) if kind is Kind.FILE_DOWNLOAD or rng.random() < 0.02 else None,
            md5=rng.choice([None, "d41d8cd98f00b204e9800998ecf8427e"]) if kind is Kind.FILE_DOWNLOAD else None,
            src_geo=src_geo, dst_geo=Geo(lat=50.1, lon=8.6, precision=Precision.SENSOR), flags=flags,
            warnings=("cut",) if rng.random() < 0.05 else (), raw=f'{{"n": {i}}}',
        ))
    return events


def incident(key: str, kind: IncidentKind, opened: datetime, status: IncidentStatus, sources: tuple[str, ...],
             n: int = 3) -> Incident:
    return Incident(id=f"inc_{kind}_{key}", kind=kind, key=key, status=status, opened_at=opened,
                    last_seen=opened + timedelta(minutes=n), window_seconds=600, summary=f"{kind} {key}",
                    event_count=n, sources=sources, source_count=len(sources), sensors=tuple(SENSORS[:n]))


def profile_of_first_has_everything(profile: Any) -> bool:
    return bool(profile and profile.credentials and profile.ports and profile.sensors and profile.incidents
                and profile.country and profile.asn)


async def replay(store: Any, **kwargs: Any) -> list[list[Event]]:
    chunks: AsyncIterator[list[Event]] = store.events_for_replay(**kwargs)
    return [chunk async for chunk in chunks]


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


async def test_every_read_answers_as_duckdb_does(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(20)
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(microseconds=250_000)
    events = varied_events(rng, now, 4000)
    popular = [e.src_ip for e in events if e.src_ip and e.src_ip != "10.1.2.3"]
    top_ips = sorted(set(popular), key=lambda ip: -popular.count(ip))[:6]
    incidents = [
        incident(top_ips[0], IncidentKind.MULTI_SENSOR, now - timedelta(hours=3), IncidentStatus.OPEN, (top_ips[0],)),
        incident("22", IncidentKind.HORIZONTAL_SCAN, now - timedelta(hours=2), IncidentStatus.CLOSED,
                 tuple(top_ips[:4])),
        incident(SHAS[0], IncidentKind.EPIDEMIC, now - timedelta(hours=5), IncidentStatus.OPEN, tuple(top_ips[2:5])),
    ]
    grown = msgspec.structs.replace(incidents[0], status=IncidentStatus.CLOSED, sources=tuple(top_ips[:2]))
    dead = [DeadLetter(ts=now - timedelta(minutes=i * 7), source="http", sensor=SENSORS[i % 3] if i % 4 else None,
                       format="cowrie", index=i, reason="invalid JSON", raw=b"{bad" + bytes([i])) for i in range(12)]
    receipt = Receipt(sensor="fra-1", key="batch-1", digest=b"\x01" * 32, response=b'{"accepted": 40}')
    duck = DuckDBStore(tmp_path / "e.duckdb", max_pending_events=100_000, write_batch_max_events=5_000,
                       metrics=Metrics())
    pg = make_pg(pg_url)
    stores: list[Any] = [duck, pg]
    for store in stores:
        await store.start()
    try:
        for store in stores:  # one batch at a time: arrival order is list order in both
            for i in range(0, len(events), 500):
                await store.append(events[i : i + 500], dead[i // 500 :: 8][:2],
                                   receipt if i == 1000 else None, incidents if i == 0 else None)
            await store.append([], [], None, [grown])
        await duck.stop()  # folds everything into DuckDB's rollups; read it folded and reopened
        await duck.start()

        async def same(read: Any, label: Any) -> Any:
            expected, got = await read(duck), await read(pg)
            assert got == expected, label
            return got

        for moment in (now, now - timedelta(hours=3, seconds=17), now + timedelta(hours=2), now - timedelta(days=1)):
            for top_n in (1, 3, 10):
                got = await same(lambda s, m=moment, n=top_n: s.summary(m, n), (moment, top_n))
                assert msgspec.to_builtins(got) == brute_summary(events, moment, top_n)
        for since, until, width in (
            (now - timedelta(hours=24), now, 3600),
            (now - timedelta(hours=24, seconds=7), now + timedelta(seconds=31), 60),
            (now - timedelta(days=4), now + timedelta(hours=1), 86400),
            (now - timedelta(seconds=50), now - timedelta(seconds=20), 300),
            (now - timedelta(hours=30, seconds=13), now + timedelta(minutes=20, seconds=3), 900),
        ):
            for by_kind in (False, True):
                got = await same(lambda s, a=since, b=until, w=width, k=by_kind: s.histogram(a, b, w, k), since)
                assert got == brute_histogram(events, since, until, width, by_kind)
        queries = [EventQuery(limit=10_000), EventQuery(filter=EventFilter(sensors=("nyc-2",)), limit=50),
                   EventQuery(filter=EventFilter(addresses=(top_ips[0],))),
                   EventQuery(filter=EventFilter(kinds=(Kind.SCAN,)), limit=30),
                   EventQuery(filter=EventFilter(countries=("DE",)), limit=1000),
                   EventQuery(filter=EventFilter(since=now - timedelta(hours=1), until=now), limit=1000)]
        for query in queries:
            assert len(await same(lambda s, q=query: s.query_events(q), query)) > 0
        cursor = None
        pages = 0
        while True:  # cursor paging, in both, page by page
            page = await same(lambda s, c=cursor: s.query_events(
                EventQuery(filter=EventFilter(sensors=("fra-1",)), limit=97, cursor=c)), pages)
            if not page:
                break
            cursor, pages = (page[-1].ts, page[-1].id), pages + 1
        assert pages > 3
        await same(lambda s: s.recent_events(25), "recent")
        assert (await same(lambda s: s.recent_events(5000), "recent all"))[-1] == events[-1]
        await same(lambda s: s.sensor_activity(now), "sensors")
        await same(lambda s: s.sensor_activity(now - timedelta(minutes=80)), "sensors earlier")
        await same(lambda s: s.dead_letters(5), "dead letters")
        assert await same(lambda s: s.find_receipt("fra-1", "batch-1"), "receipt") == receipt
        assert await same(lambda s: s.find_receipt("fra-1", "batch-2"), "no receipt") is None
        assert (await same(lambda s: s.get_incident(grown.id), "incident")) == grown  # the latest state won
        for iq in (IncidentQuery(), IncidentQuery(kinds=(IncidentKind.EPIDEMIC,)), IncidentQuery(source=top_ips[3]),
                   IncidentQuery(source=top_ips[0]), IncidentQuery(status=IncidentStatus.CLOSED, limit=1),
                   IncidentQuery(since=now - timedelta(hours=2, minutes=30), until=now)):
            await same(lambda s, q=iq: s.query_incidents(q), iq)
        for ip in (*top_ips, "10.1.2.3", "192.0.2.99"):
            for limit in (2, 50):
                profile = await same(lambda s, a=ip, n=limit: s.attacker_profile(a, n), (ip, limit))
                assert (profile is None) == (ip == "192.0.2.99")
        assert profile_of_first_has_everything(await pg.attacker_profile(top_ips[0], 50))
        for sha in (*SHAS, "f" * 64):
            malware = await same(lambda s, h=sha: s.malware_profile(h, 3), sha)
            assert (malware is None) == (sha == "f" * 64)
        for min_sensors, limit in ((1, 1000), (3, 10), (5, 1000)):
            feed = await same(lambda s, m=min_sensors, n=limit: s.attacker_summaries(
                since=now - timedelta(hours=24), until=now, min_sensors=m, limit=n), (min_sensors, limit))
            assert feed and all(row.ip != "10.1.2.3" for row in feed)  # private sources are never shared
        for windows in ({"window_seconds": 3600, "payload_window_seconds": 3 * 86400, "limit": 700, "chunk_events": 99},
                        {"window_seconds": 86400, "payload_window_seconds": 86400, "limit": 10_000,
                         "chunk_events": 20_000},
                        {"window_seconds": 60, "payload_window_seconds": 60, "limit": 0}):
            chunks = await same(lambda s, w=windows: replay(s, **w), windows)
            assert all(e.raw is None for chunk in chunks for e in chunk)
            assert len(chunks) > 3 or windows["limit"] != 700
        assert await pg.schema_version() == 3
    finally:
        for store in stores:
            await store.stop()


async def test_replay_keeps_the_order_of_a_batch_whose_events_share_one_ingest_time(pg_url: str) -> None:
    """A batch's events share `ingest_ts` and their ids are random within a millisecond; the
    restart replay must still give them in the order the detectors saw them (as DuckDB's rowid)."""
    now = datetime.now(UTC)
    events = [msgspec.structs.replace(e, ingest_ts=now) for e in varied_events(random.Random(3), now, 300)]
    store = make_pg(pg_url)
    await store.start()
    try:
        await store.append(events[:200], [])
        await store.append(events[200:], [])
        chunks = await replay(store, window_seconds=10**7, payload_window_seconds=10**7, limit=250, chunk_events=60)
        assert [e.id for chunk in chunks for e in chunk] == [e.id for e in events[50:]]
    finally:
        await store.stop()


async def test_a_redelivered_batch_is_stored_and_counted_once(pg_url: str) -> None:
    rng = random.Random(21)
    now = datetime.now(UTC)
    events = varied_events(rng, now, 1500)
    metrics = Metrics()
    store = make_pg(pg_url, metrics=metrics)
    await store.start()
    try:
        await asyncio.gather(*(store.append(events[i : i + 100], []) for i in range(0, 1500, 100)))
        before = (await store.summary(now, 5), await store.histogram(now - timedelta(days=2), now, 3600, True))
        # again, after a "crash": the same messages, some in one commit with new events
        fresh = varied_events(rng, now, 10)
        await asyncio.gather(store.append(events[:700], []), store.append(events[600:] + fresh, []),
                             store.append(events[:50], []))
        dropped = metrics.total("honeyatlas_events_dropped_total", component="store", reason="already_stored")
        assert dropped == 700 + 900 + 50
        assert msgspec.to_builtins(await store.summary(now, 5)) == brute_summary(events + fresh, now, 5)
        await store.append(fresh, [])
        after = (await store.summary(now, 5), await store.histogram(now - timedelta(days=2), now, 3600, True))
        assert after != before and after[0] == await store.summary(now, 5)
        assert after[1] == brute_histogram(events + fresh, now - timedelta(days=2), now, 3600, True)
        assert len(await store.query_events(EventQuery(limit=10_000))) == 1510
    finally:
        await store.stop()


async def test_a_failing_job_fails_alone_and_leaves_nothing_behind(pg_url: str) -> None:
    """A job whose event cannot be stored (a NUL character: PostgreSQL text refuses it) fails
    with its receipt, dead letters and incidents; the jobs committed with it do not."""
    rng = random.Random(22)
    now = datetime.now(UTC)
    good, bad = varied_events(rng, now, 200), varied_events(rng, now, 20)
    bad[7] = msgspec.structs.replace(bad[7], command="a\x00b")
    letter = DeadLetter(ts=now, source="http", sensor="fra-1", format="cowrie", index=0, reason="r", raw=b"x")
    store = make_pg(pg_url)
    await store.start()
    try:
        results = await asyncio.gather(
            store.append(good[:100], [letter], Receipt(sensor="a", key="k1", digest=b"1", response=b"{}")),
            store.append(bad, [letter], Receipt(sensor="a", key="k2", digest=b"2", response=b"{}"),
                         [incident("x", IncidentKind.CAMPAIGN, now, IncidentStatus.OPEN, ("203.0.0.1",))]),
            store.append(good[100:], []),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StoreError) and "write to 127.0.0.1:" in str(results[1])
        assert len(await store.query_events(EventQuery(limit=1000))) == 200
        assert await store.find_receipt("a", "k1") is not None and await store.find_receipt("a", "k2") is None
        assert len(await store.dead_letters(10)) == 1 and await store.query_incidents(IncidentQuery()) == []
        assert msgspec.to_builtins(await store.summary(now, 3)) == brute_summary(good, now, 3)
        assert store.pending_events == 0
    finally:
        await store.stop()


async def test_two_shards_writing_at_once_give_exact_totals(pg_url: str) -> None:
    rng = random.Random(23)
    now = datetime.now(UTC)
    events = varied_events(rng, now, 6000)
    first, second = make_pg(pg_url, shard=0), make_pg(pg_url, shard=1)
    await asyncio.gather(first.start(), second.start())  # both migrate at once: one does, one waits
    try:
        # each shard gets two thirds: the middle third reaches both, as after a consumer crash
        await asyncio.gather(
            *(first.append(events[i : i + 250], []) for i in range(0, 4000, 250)),
            *(second.append(events[i : i + 250], []) for i in range(2000, 6000, 250)),
        )
        for store in (first, second):
            assert msgspec.to_builtins(await store.summary(now, 10)) == brute_summary(events, now, 10)
            since = now - timedelta(hours=30)
            assert await store.histogram(since, now, 600, True) == brute_histogram(events, since, now, 600, True)
        shards = await first._internal_read("SELECT DISTINCT shard FROM stats_minutes ORDER BY 1")
        assert shards == [(0,), (1,)]
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_retention_drops_old_days_and_the_statistics_stay_exact(pg_url: str) -> None:
    rng = random.Random(24)
    now = datetime.now(UTC)
    events = [msgspec.structs.replace(e, ts=e.ts - timedelta(days=rng.choice([0, 1, 2, 3, 4])))
              for e in varied_events(rng, now, 3000)]
    events += [msgspec.structs.replace(events[0], id=new_event_id(), ts=datetime(1999, 1, 1, tzinfo=UTC)),
               msgspec.structs.replace(events[1], id=new_event_id(), ts=datetime(9999, 12, 31, 23, 59, tzinfo=UTC))]
    filler = make_pg(pg_url)  # retention off: a partition for each day
    await filler.start()
    try:
        await asyncio.gather(*(filler.append(events[i : i + 300], []) for i in range(0, len(events), 300)))
        assert await filler.drop_expired_partitions(now) == 0
    finally:
        await filler.stop()
    store = make_pg(pg_url, retention_days=2)
    await store.start()
    try:
        await store.drop_expired_partitions(now)  # the store's own hourly run may have been first
        assert await store.drop_expired_partitions(now) == 0
        cutoff = datetime.combine((now - timedelta(days=2)).date(), datetime.min.time(), tzinfo=UTC)
        days = await store._internal_read("SELECT relname FROM pg_class WHERE relname LIKE 'events_p%%' AND relkind = 'r' "
                                 "ORDER BY 1")
        assert days[0] == (f"events_p{cutoff:%Y%m%d}",) and len(days) in (3, 4)  # 4: now + 15 min is tomorrow
        kept = [e for e in events if e.ts >= cutoff]
        assert len(kept) < len(events) - 500
        stored = await store.query_events(EventQuery(limit=10_000))
        assert sorted(e.id for e in stored) == sorted(e.id for e in kept)
        for moment in (now, now - timedelta(hours=20)):
            assert msgspec.to_builtins(await store.summary(moment, 5)) == brute_summary(kept, moment, 5)
        since = now - timedelta(days=5, seconds=13)
        assert await store.histogram(since, now, 3600, True) == brute_histogram(kept, since, now, 3600, True)
        assert await store.histogram(since, now, 3600, True) != brute_histogram(events, since, now, 3600, True)
    finally:
        await store.stop()


async def test_far_timestamps_go_to_the_default_partition_and_move_when_their_day_comes(pg_url: str) -> None:
    rng = random.Random(25)
    now = datetime.now(UTC)
    events = varied_events(rng, now, 50)
    far = [msgspec.structs.replace(events[0], id=new_event_id(), ts=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
           msgspec.structs.replace(events[1], id=new_event_id(), ts=datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)),
           msgspec.structs.replace(events[2], id=new_event_id(), ts=now + timedelta(days=10))]
    store = make_pg(pg_url)
    await store.start()
    try:
        await store.append(events + far, [])
        assert (await store.query_events(EventQuery(limit=1)))[0] == far[0]
        in_default = await store._internal_read("SELECT count(*) FROM events_default")
        assert in_default == [(3,)]
        # ten days later, the writer creates that day's partition: the row moves into it
        await store._create_partition(store._write_con, (now + timedelta(days=10)).date())  # type: ignore[arg-type]
        assert await store._internal_read("SELECT count(*) FROM events_default") == [(2,)]
        assert len(await store.query_events(EventQuery(limit=100))) == 53
        await store.append(far, [])  # and a redelivery still finds them
        assert len(await store.query_events(EventQuery(limit=100))) == 53
        assert msgspec.to_builtins(await store.summary(now, 5)) == brute_summary(events + far, now, 5)
    finally:
        await store.stop()


async def test_the_api_reads_are_never_jit_compiled(pg_url: str) -> None:
    """JIT compiled a third to a half of each 30-day summary scan (docs/performance.md)."""
    store = make_pg(pg_url)
    await store.start()
    try:
        for _ in range(store._reads.concurrent + 1):  # every reader of the pool
            assert await store._read("summary", "SHOW jit") == [("off",)]
    finally:
        await store.stop()


async def test_a_bad_url_is_one_clear_line_without_the_password(postgres_server: PostgresServer) -> None:
    for url, expected in (
        ("postgresql://honey:s3cretpw@127.0.0.1:1/atlas", "cannot connect to PostgreSQL at 127.0.0.1:1/atlas"),
        ("postgresql://honey:s3cr%zzetpw@127.0.0.1:5/atlas", "cannot connect to PostgreSQL at storage.url"),
        (postgres_server.url.rsplit("/", 1)[0] + "/missing_db", "database \"missing_db\" does not exist"),
    ):
        with pytest.raises(StoreError) as caught:
            await make_pg(url).start()
        message = str(caught.value)
        assert expected in message and "check storage.url" in message and "\n" not in message
        assert "s3cr" not in message and caught.value.__cause__ is None
    with pytest.raises(StoreError, match="not started"):
        await make_pg(postgres_server.url).append([varied_events(random.Random(1), datetime.now(UTC), 1)[0]], [])


def test_the_registry_is_shared_by_every_process(pg_url: str) -> None:
    """A sensor added through one registry (the `sensor` command) authenticates through another
    (an ingest process); revocation and hpfeeds credentials reach it too."""
    registries = [PostgresSensorRegistry(pg_url), PostgresSensorRegistry(pg_url)]
    for registry in registries:
        registry.open()  # each creates the table if missing: the second finds it
    command, ingest = registries
    try:
        sensor, token = command.add("fra-1", honeypot="cowrie", lat=50.11, lon=8.68, label="Frankfurt")
        command.add("lab", honeypot="dionaea", lat=None, lon=None, demo=True)
        assert ingest.authenticate(token) == sensor == ingest.get("fra-1")
        assert ingest.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert ingest.authenticate("hat_0123456789abcdef_" + "x" * 40) is None
        assert ingest.authenticate("not a token") is None
        assert [s.name for s in ingest.list()] == ["fra-1", "lab"]
        with pytest.raises(RegistryError, match="already exists"):
            ingest.add("fra-1", honeypot="cowrie", lat=None, lon=None)
        for bad in ({"name": "-x"}, {"honeypot": "Cowrie"}, {"lat": 91.0}):
            with pytest.raises(RegistryError, match="invalid"):
                ingest.add(str(bad.get("name", "ok")), honeypot=str(bad.get("honeypot", "cowrie")),
                           lat=bad.get("lat", 1.0), lon=2.0)  # type: ignore[arg-type]

        ident, secret = command.enable_hpfeeds("fra-1")
        assert ingest.hpfeeds_credentials(ident) == (sensor, secret, list(HPFEEDS_CHANNELS["cowrie"]))
        assert command.enable_hpfeeds("lab", ["dionaea.capture"], ident="lab-feed")[0] == "lab-feed"
        with pytest.raises(RegistryError, match="already used"):
            ingest.enable_hpfeeds("lab", ident=ident)
        assert ingest.hpfeeds_credentials("nobody") is None

        revoked = ingest.revoke("fra-1")
        assert revoked.revoked and command.revoke("fra-1").revoked_at == revoked.revoked_at
        assert command.authenticate(token) is None and command.hpfeeds_credentials(ident) is None
        with pytest.raises(RegistryError, match="no sensor named"):
            command.revoke("ghost")
        with pytest.raises(RegistryError, match="is revoked"):
            command.enable_hpfeeds("fra-1")
    finally:
        for registry in registries:
            registry.close()
    with pytest.raises(RegistryError, match="not open"):
        command.get("fra-1")
