"""The filter language in the stores: every read of a filter (events, a window's summary, the
histogram, incidents) equals a brute-force answer over the events, on both backends, and the
rollup paths of a window's summary agree with the raw-event paths."""

from __future__ import annotations

import contextlib
import ipaddress
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from honeyatlas.event import Event, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.store import WINDOW_TOP_DIMENSIONS, EventQuery, IncidentQuery, Store, duckdb_addresses
from honeyatlas.store.columns import COLUMN_NAMES
from honeyatlas.store.duckdb import DuckDBStore
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.postgres import PostgresStore
from tests.engines.postgres import PostgresServer
from tests.store.test_stats_rollups import brute_histogram

KINDS = [Kind.CONNECTION, Kind.LOGIN_ATTEMPT, Kind.COMMAND, Kind.SCAN, Kind.FILE_DOWNLOAD]
ASNS = {4134: "CN", 15169: "US", 3320: "DE"}
SOURCES = ["198.51.100.7", "198.51.100.200", "198.51.101.9", "203.0.113.5", "10.0.0.1", "2001:db8::1",
           "2001:db8:0:1::5", "2001:db9::7", "::1", "fe80::1:2"]
# dimension -> (column of WINDOW_TOP_DIMENSIONS' answer, how to read it from an event)
READ = {
    "countries": lambda e: e.src_geo.country if e.src_geo else None,
    "asns": lambda e: e.src_geo.asn if e.src_geo else None,
    "ips": lambda e: e.src_ip,
    "ports": lambda e: e.dst_port,
    "sensors": lambda e: e.sensor,
    "usernames": lambda e: e.username,
    "passwords": lambda e: e.password,
    "commands": lambda e: e.command,
    "payloads": lambda e: e.sha256,
}


def events_around(now: datetime, count: int, seed: int = 13) -> list[Event]:
    """A known mix over the last ~30 hours and a few minutes ahead, every filtered column varied."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        offset = rng.choice([-rng.uniform(0, 86400), -rng.uniform(0, 600), -86400 - rng.uniform(-300, 300),
                             -rng.uniform(86400, 30 * 3600), rng.uniform(0, 120)])
        kind = rng.choice(KINDS)
        asn = rng.choice([None, *ASNS])
        login = kind is Kind.LOGIN_ATTEMPT
        ts = now + timedelta(seconds=offset)
        found.append(Event(
            id=new_event_id(), ts=ts, ingest_ts=ts, sensor=rng.choice(["fra-1", "nyc-2", "sgp-3"]),
            honeypot=rng.choice(["cowrie", "dionaea"]), kind=kind,
            outcome=rng.choice([Outcome.SUCCESS, Outcome.FAILURE]) if login else Outcome.UNKNOWN,
            src_ip=rng.choice([*SOURCES, None]), dst_port=rng.choice([None, 22, 23, 445]),
            protocol=rng.choice([None, "ssh", "telnet", "smb"]),
            username=rng.choice(["root", "admin"]) if login else None,
            password=rng.choice(["123456", "admin", "x"]) if login else None,
            command=rng.choice(["uname -a", "id"]) if kind is Kind.COMMAND else None,
            sha256=f"{rng.randrange(3):064x}" if kind is Kind.FILE_DOWNLOAD else None,
            src_geo=None if asn is None else Geo(country=ASNS[asn], asn=asn, org=f"org {asn}",
                                                 precision=Precision.COUNTRY),
        ))
    return found


def matches(event: Event, f: EventFilter) -> bool:
    """The filter's meaning, written again the plain way: the oracle of these tests."""
    geo = event.src_geo
    checks = [
        (f.sensors, event.sensor), (f.honeypots, event.honeypot), (f.kinds, event.kind),
        (f.outcomes, event.outcome), (f.protocols, event.protocol), (f.ports, event.dst_port),
        (f.countries, geo.country if geo else None), (f.asns, geo.asn if geo else None),
    ]
    if any(values and value not in values for values, value in checks):
        return False
    if f.addresses or f.networks:
        if event.src_ip is None:
            return False
        address = ipaddress.ip_address(event.src_ip)
        if event.src_ip not in f.addresses and not any(
                address.version == ipaddress.ip_network(n).version and address in ipaddress.ip_network(n)
                for n in f.networks):
            return False
    return (f.since is None or event.ts >= f.since) and (f.until is None or event.ts < f.until)


def brute_window(events: list[Event], f: EventFilter, top_n: int) -> dict[str, Any]:
    chosen = [e for e in events if matches(e, f)]
    top = {}
    for dim in WINDOW_TOP_DIMENSIONS:
        counted = Counter(READ[dim](e) for e in chosen if READ[dim](e) is not None)
        ranked = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
        top[dim] = [{"key": k, "count": n, **({"label": f"org {k}"} if dim == "asns" else {})} for k, n in ranked]
    return {"total": len(chosen), "top": top}


def filters_of(now: datetime) -> list[EventFilter]:
    day = EventFilter(since=now - timedelta(hours=24), until=now)
    wide = EventFilter(since=now - timedelta(days=30), until=now + timedelta(hours=1))
    return [
        day, wide,
        EventFilter(since=now - timedelta(hours=3, minutes=17, seconds=5), until=now - timedelta(minutes=9)),
        EventFilter(since=now - timedelta(hours=26), until=now - timedelta(hours=23, seconds=1)),
        msgspec.structs.replace(day, kinds=(Kind.LOGIN_ATTEMPT,)),
        msgspec.structs.replace(wide, kinds=(Kind.LOGIN_ATTEMPT, Kind.COMMAND)),
        msgspec.structs.replace(day, sensors=("nyc-2",)),
        msgspec.structs.replace(day, honeypots=("dionaea",)),
        msgspec.structs.replace(day, outcomes=(Outcome.SUCCESS,)),
        msgspec.structs.replace(day, protocols=("ssh", "smb")),
        msgspec.structs.replace(day, ports=(22, 445)),
        msgspec.structs.replace(day, countries=("CN",)),
        msgspec.structs.replace(day, asns=(15169, 3320)),
        msgspec.structs.replace(wide, addresses=("198.51.100.7", "2001:db8::1")),
        msgspec.structs.replace(wide, networks=("198.51.100.0/24",)),
        msgspec.structs.replace(wide, networks=("198.51.100.0/23", "2001:db8::/32")),
        msgspec.structs.replace(wide, networks=("::/0",)),
        msgspec.structs.replace(wide, networks=("0.0.0.0/0",)),
        msgspec.structs.replace(wide, networks=("fe80::/10", "2001:db8:0:1::/64"), addresses=("203.0.113.5",)),
        msgspec.structs.replace(day, kinds=(Kind.LOGIN_ATTEMPT,), countries=("US", "DE"), ports=(22,)),
    ]


def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A store of the test's backend, on the same database each time it is called."""
    if request.param == "duckdb":
        return DuckDBStore(tmp_path / "events.duckdb", max_pending_events=100_000, write_batch_max_events=10_000,
                           metrics=Metrics(), stats_fold_interval_seconds=3600.0)
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    url = getattr(request.node, "pg_url", None) or postgres.new_database()
    request.node.pg_url = url
    return PostgresStore(url, metrics=Metrics(), max_pending_events=100_000, write_batch_max_events=5_000)


@contextlib.asynccontextmanager
async def holding(request: pytest.FixtureRequest, tmp_path: Path, events: list[Event]) -> AsyncIterator[Store]:
    """A started store of the test's backend holding `events`, stopped afterwards."""
    store = make_store(request, tmp_path)
    await store.start()
    await store.append(events, [])
    try:
        yield store
    finally:
        await store.stop()


@pytest.fixture(params=["duckdb", "postgresql"])
async def filled(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, list[Event], datetime]]:
    """A store with the mix, half of it folded into the rollups, half not."""
    now = datetime.now(UTC)
    events = events_around(now, 1500)

    def make() -> Any:
        return make_store(request, tmp_path)

    store = make()
    await store.start()
    await store.append(events[:900], [])
    await store.stop()  # DuckDB folds when it opens again
    store = make()
    await store.start()
    await store.append(events[900:], [])
    try:
        yield store, events, now
    finally:
        await store.stop()


async def test_every_read_of_a_filter_equals_the_events_it_selects(filled: tuple[Store, list[Event], datetime]) -> None:
    store, events, now = filled
    for f in filters_of(now):
        expected = brute_window(events, f, 4)
        for rollups in (True, False):  # both paths, exact
            got = msgspec.to_builtins(await store.window_summary(f, 4, rollups=rollups))
            assert got == expected, (f, rollups)
        chosen = [e for e in events if matches(e, f)]
        assert sorted(e.id for e in await store.query_events(EventQuery(filter=f, limit=10_000))) == sorted(
            e.id for e in chosen), f
        assert f.since is not None and f.until is not None
        for width, by_kind in ((60, True), (3600, False)):
            got_histogram = await store.histogram(f.since, f.until, width, by_kind, f)
            assert got_histogram == brute_histogram(chosen, f.since, f.until, width, by_kind), (f, width)


async def test_pages_oldest_first_without_gaps_or_repeats(filled: tuple[Store, list[Event], datetime]) -> None:
    store, events, now = filled
    f = EventFilter(since=now - timedelta(hours=30), until=now, kinds=(Kind.LOGIN_ATTEMPT, Kind.SCAN))
    for order in ("asc", "desc"):
        seen: list[Event] = []
        cursor = None
        while True:
            page = await store.query_events(EventQuery(filter=f, order=order, limit=37, cursor=cursor))
            seen += page
            if len(page) < 37:
                break
            cursor = (page[-1].ts, page[-1].id)
        expected = sorted((e for e in events if matches(e, f)), key=lambda e: (e.ts, e.id), reverse=order == "desc")
        assert [e.id for e in seen] == [e.id for e in expected], order


async def test_incidents_by_sensor_address_prefix_and_kind(filled: tuple[Store, list[Event], datetime]) -> None:
    store, _, now = filled

    def make(key: str, kind: IncidentKind, sources: tuple[str, ...], sensors: tuple[str, ...]) -> Incident:
        return Incident(id=f"{kind}:{key}", kind=kind, status=IncidentStatus.OPEN, key=key, opened_at=now,
                        last_seen=now, sources=sources, source_count=len(sources), sensors=sensors,
                        summary="test", window_seconds=600, event_count=1)

    made = [
        make("198.51.100.7", IncidentKind.MULTI_SENSOR, ("198.51.100.7",), ("fra-1", "nyc-2")),
        make("2001:db8::1", IncidentKind.VERTICAL_SCAN, ("2001:db8::1",), ("sgp-3",)),
        make("a" * 64, IncidentKind.EPIDEMIC, ("203.0.113.5", "198.51.101.9"), ("fra-1",)),
        make("hassh:ab:cd", IncidentKind.CAMPAIGN, ("2001:db9::7",), ("nyc-2",)),
    ]
    await store.append([], [], incidents=made)

    async def ids(**asked: Any) -> set[str]:
        return {i.id for i in await store.query_incidents(IncidentQuery(**asked))}

    assert await ids(sensors=("nyc-2",)) == {made[0].id, made[3].id}
    assert await ids(sensors=("sgp-3", "fra-1")) == {made[0].id, made[1].id, made[2].id}
    assert await ids(addresses=("203.0.113.5",)) == {made[2].id}
    assert await ids(networks=("198.51.0.0/16",)) == {made[0].id, made[2].id}
    assert await ids(networks=("2001:db8::/32",)) == {made[1].id}
    assert await ids(networks=("2001:db8::/31",)) == {made[1].id, made[3].id}
    assert await ids(kinds=(IncidentKind.EPIDEMIC, IncidentKind.CAMPAIGN), networks=("::/0",)) == {made[3].id}


def with_source(now: datetime, src_ip: str, seconds: float) -> Event:
    ts = now - timedelta(seconds=seconds)
    return Event(id=new_event_id(), ts=ts, ingest_ts=ts, sensor="fra-1", honeypot="cowrie", kind=Kind.CONNECTION,
                 outcome=Outcome.UNKNOWN, src_ip=src_ip)


@pytest.fixture(params=["duckdb", "postgresql"])
async def tied(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, list[Event], datetime]]:
    """Addresses tied by count where text order is not numeric order, across IPv4, IPv6 and
    a text that is no canonical dotted quad (DuckDB counts the first by integer, the rest by text)."""
    now = datetime.now(UTC)
    counts = {"9.0.0.1": 5, "8.0.0.1": 5, "10.0.0.1": 5, "100.0.0.1": 5, "2001:db8::1": 5, "01.2.3.4": 5, "1.2.3.4": 3,
              "::1": 3, "255.255.255.255": 1, "0.0.0.0": 1, "fe80::2": 1, "1.2.3.4 ": 1}
    events = [with_source(now, ip, 60 + i) for ip, n in counts.items() for i in range(n)]
    async with holding(request, tmp_path, events) as store:
        yield store, events, now


async def test_addresses_tied_by_count_rank_by_their_text(tied: tuple[Store, list[Event], datetime]) -> None:
    store, events, now = tied
    f = EventFilter(since=now - timedelta(days=30), until=now)
    for top_n in range(1, 12):
        expected = brute_window(events, f, top_n)["top"]["ips"]
        for rollups in (True, False):
            got = msgspec.to_builtins(await store.window_summary(f, top_n, rollups=rollups))["top"]["ips"]
            assert got == expected, (top_n, rollups)
    filtered = msgspec.structs.replace(f, sensors=("fra-1",))
    assert msgspec.to_builtins(await store.window_summary(filtered, 4))["top"]["ips"] == brute_window(
        events, filtered, 4)["top"]["ips"]


# Per group of events: how many, and the one value of every dimension they share. Counts tie
# at and across every cut of a top list; each dimension's key order differs from the group
# order (numeric keys from their text order), so ties must be ordered by the key itself.
TIED_GROUPS = [
    (5, {"username": "root", "password": "x9", "command": "id", "sha256": "c" * 64, "dst_port": 8080,
         "sensor": "nyc-2", "asn": 4134, "country": "US", "src_ip": "10.0.0.9"}),
    (5, {"username": "admin", "password": "x10", "command": "uname", "sha256": "a" * 64, "dst_port": 22,
         "sensor": "sgp-3", "asn": 15169, "country": "CN", "src_ip": "10.0.0.10"}),
    (5, {"username": "pi", "password": "abc", "command": "ls", "sha256": "b" * 64, "dst_port": 100,
         "sensor": "fra-1", "asn": 3320, "country": "DE", "src_ip": "9.0.0.1"}),
    (3, {"username": "guest", "password": "x1", "command": "w", "sha256": "d" * 64, "dst_port": 9,
         "sensor": "ams-4", "asn": 64500, "country": "BR", "src_ip": "2001:db8::1"}),
    (3, {"username": "oracle", "password": "123", "command": "cat", "sha256": "0" * 64, "dst_port": 10,
         "sensor": "lon-5", "asn": 7, "country": "AR", "src_ip": "100.0.0.1"}),
    (1, {"username": "user", "password": "pass", "command": "ps", "sha256": "e" * 64, "dst_port": 445,
         "sensor": "bom-6", "asn": 64501, "country": "ZA", "src_ip": "1.2.3.4"}),
]


@pytest.fixture(params=["duckdb", "postgresql"])
async def tied_lists(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, list[Event], datetime]]:
    """Every dimension tied by count (TIED_GROUPS) in the window; and, outside the honeypot
    filter or the window, `index` more events of each group's values, which would move the
    ties if counted (without the filter: 5, 6, 7, 6, 7, 6, tied again)."""
    now = datetime.now(UTC)
    events = []
    for index, (n, shared) in enumerate(TIED_GROUPS):
        geo = Geo(country=shared["country"], asn=shared["asn"], org=f"org {shared['asn']}",
                  precision=Precision.COUNTRY)
        fields = {k: v for k, v in shared.items() if k not in ("asn", "country")}
        placed = [("cowrie", timedelta(minutes=5 + i)) for i in range(n)]
        placed += [("dionaea", timedelta(minutes=7 + i)) for i in range(index)]
        placed += [("cowrie", timedelta(days=3, minutes=i)) for i in range(index)]
        events += [Event(id=new_event_id(), ts=now - ago, ingest_ts=now - ago, honeypot=honeypot,
                         kind=Kind.LOGIN_ATTEMPT, outcome=Outcome.FAILURE, src_geo=geo, **fields)
                   for honeypot, ago in placed]
    async with holding(request, tmp_path, events) as store:
        yield store, events, now


async def test_every_list_tied_by_count_ranks_by_its_key(tied_lists: tuple[Store, list[Event], datetime]) -> None:
    """The one-scan lists of both backends cut and order ties as the brute force does, with a
    filter beyond the window (every list from the events) and without (the rollup paths)."""
    store, events, now = tied_lists
    day = EventFilter(since=now - timedelta(hours=24), until=now)
    for f in (day, msgspec.structs.replace(day, honeypots=("cowrie",)),
              msgspec.structs.replace(day, kinds=(Kind.LOGIN_ATTEMPT,))):
        for top_n in range(1, len(TIED_GROUPS) + 2):
            expected = brute_window(events, f, top_n)
            for rollups in (True, False):
                got = msgspec.to_builtins(await store.window_summary(f, top_n, rollups=rollups))
                assert got == expected, (f, top_n, rollups)


def test_only_a_canonical_dotted_quad_has_an_ipv4_key() -> None:
    import duckdb

    texts = {"0.0.0.0": 0, "255.255.255.255": 2**32 - 1, "198.51.100.7": 3325256711, "01.2.3.4": None,
             "1.2.3": None, "1.2.3.4.5": None, "256.1.1.1": None, " 1.2.3.4": None, "1.2.3.4 ": None,
             "1..2.3": None, "::ffff:1.2.3.4": None, "2001:db8::1": None, "": None, None: None}
    con = duckdb.connect()
    found = dict(con.execute(f"SELECT src_ip, {duckdb_addresses.KEY} FROM (SELECT unnest(?::VARCHAR[]) AS src_ip)",
                             [list(texts)]).fetchall())
    assert found == texts


async def test_rows_stored_without_their_key_get_it_when_the_store_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As benchmarks/fill.py writes them (naming the shared columns only), or as stored before
    migration 6: the next start keys them, in chunks, and the lists count them."""
    import duckdb

    monkeypatch.setattr(duckdb_addresses, "_CHUNK_ROWS", 7)
    now = datetime.now(UTC)
    events = events_around(now, 300)
    path = tmp_path / "events.duckdb"

    def make() -> DuckDBStore:
        return DuckDBStore(path, max_pending_events=100_000, write_batch_max_events=10_000, metrics=Metrics())

    store = make()
    await store.start()
    await store.append(events, [])
    await store.stop()
    con = duckdb.connect(str(path))
    columns = ", ".join(COLUMN_NAMES)
    con.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM events")  # each event twice, the copy unkeyed
    assert con.execute("SELECT count(src_ip_v4) FROM events").fetchall() == con.execute(
        "SELECT count(*) // 2 FROM events WHERE src_ip LIKE '%.%'").fetchall()
    con.close()
    store = make()
    await store.start()
    try:
        f = EventFilter(since=now - timedelta(days=30), until=now + timedelta(hours=1))
        for asked in (f, msgspec.structs.replace(f, networks=("198.51.100.0/23",))):
            expected = brute_window(events + events, asked, 4)
            assert msgspec.to_builtins(await store.window_summary(asked, 4, rollups=False)) == expected, asked
    finally:
        await store.stop()
    con = duckdb.connect(str(path))
    assert con.execute(f"SELECT count(*) FROM events WHERE src_ip_v4 IS DISTINCT FROM ({duckdb_addresses.KEY})"
                       ).fetchall() == [(0,)]
    assert con.execute("SELECT keyed_rowid FROM address_keys").fetchall() == [(599,)]
    con.close()
