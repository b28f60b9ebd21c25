"""The PostgreSQL store's schema: every DDL statement, the migrations, the daily partitions.

What lives here: the column list (columns.EVENT_COLUMNS, mapped to PostgreSQL
types), MIGRATIONS (applied in order under an advisory lock and recorded in
`schema_migrations`), the partition naming and creation, and the conversion of an `Event`
into the row the writer COPYs. What must not: queries (postgres_stats.py,
postgres_profiles.py) and the writer's transaction (postgres.py).

`events` is partitioned by range on `ts`, one partition per UTC day, created on demand by
the writer before it copies a batch; events outside the partition horizon (far past, far
future: a sensor's broken clock, year 9999) land in `events_default`. When a day's partition
is created later, the rows the default partition holds for that day move into it in the
same transaction. Every text column is `COLLATE "C"`: code-point order, like DuckDB's and
Python's, whatever the database's locale (and cheaper to index).

The keyed rollups' DDL (`stats_hours`, `stats_days`) lives with their reads in
postgres_keyed.py. The rollups (`stats_minutes`, `stats_hours`, `stats_days`,
`stats_sensors`) carry a `shard` column, one per writer process, so two workers never
update the same row; readers sum over shards.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from msgspec.structs import astuple
from psycopg import sql

from honeyatlas.event import EVENT_FIELDS, Event
from honeyatlas.store import postgres_keyed
from honeyatlas.store.columns import COLUMN_NAMES, EVENT_COLUMNS

_TYPES = {
    "VARCHAR": 'text COLLATE "C"',
    "TIMESTAMP": "timestamptz",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
    "VARCHAR[]": 'text[] COLLATE "C"',
}
# The type names psycopg needs to COPY each column in binary.
_COPY_TYPES = {"VARCHAR": "text", "TIMESTAMP": "timestamptz", "INTEGER": "int4", "SMALLINT": "int2",
               "BIGINT": "int8", "DOUBLE": "float8", "VARCHAR[]": "text[]"}


def _split(sql: str) -> tuple[str, str]:
    base, _, rest = sql.partition(" NOT NULL")
    return base, " NOT NULL" if _ else rest


def _column(name: str, duck: str) -> str:
    base, not_null = _split(duck)
    if name in ("flags", "warnings"):
        not_null = " NOT NULL"  # never NULL: `flags && ARRAY[...]` must be false, not NULL, for no flags
    return f"{name} {_TYPES[base]}{not_null}"


COPY_TYPES = [_COPY_TYPES[_split(duck)[0]] for _, duck, _ in EVENT_COLUMNS]
COLUMNS_SQL = ", ".join(COLUMN_NAMES)
REPLAY_COLUMNS_SQL = ", ".join("NULL AS raw" if name == "raw" else name for name in COLUMN_NAMES)

# Indexes on the partitioned table (PostgreSQL builds them on every partition): each serves
# a query of the API. The primary key (ts, id) serves the newest-first pages and catches a
# redelivered event (its ts travels with its id).
_EVENT_INDEXES = {
    "events_ingest": "(ingest_ts, id)",  # recent events, sensors' last hour
    "events_src_ip": "(src_ip, ts)",
    "events_sensor": "(sensor, ts)",
    "events_kind": "(kind, ts)",
    "events_src_country": "(src_country, ts)",
    "events_sha256": "(sha256) WHERE sha256 IS NOT NULL",
}

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE events (" + ", ".join(_column(n, d) for n, d, _ in EVENT_COLUMNS)
            + ", PRIMARY KEY (ts, id)) PARTITION BY RANGE (ts)",
            "CREATE TABLE events_default PARTITION OF events DEFAULT",
            *(f"CREATE INDEX {name} ON events {definition}" for name, definition in _EVENT_INDEXES.items()),
            'CREATE TABLE dead_letters (ts timestamptz NOT NULL, source text COLLATE "C" NOT NULL, '
            'sensor text COLLATE "C", format text NOT NULL, idx integer NOT NULL, reason text NOT NULL, raw bytea)',
            "CREATE INDEX dead_letters_ts ON dead_letters (ts)",
            'CREATE TABLE idempotency_receipts (sensor text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, '
            "digest bytea NOT NULL, response bytea NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (sensor, key))",
            'CREATE TABLE incidents (id text COLLATE "C" PRIMARY KEY, kind text NOT NULL, status text NOT NULL, '
            'key text COLLATE "C" NOT NULL, opened_at timestamptz NOT NULL, last_seen timestamptz NOT NULL, '
            'source_count integer NOT NULL, sensor_count integer NOT NULL, sources text[] COLLATE "C" NOT NULL, '
            "body text NOT NULL)",  # text, not jsonb: jsonb refuses \u0000 in attacker-chosen keys
            "CREATE INDEX incidents_last_seen ON incidents (last_seen)",
            "CREATE INDEX incidents_key ON incidents (key)",
            "CREATE INDEX incidents_sources ON incidents USING gin (sources)",
            # Rollups, updated in the transaction that inserts the events (postgres_stats.py).
            'CREATE TABLE stats_minutes (minute timestamptz NOT NULL, kind text COLLATE "C" NOT NULL, '
            "shard smallint NOT NULL, n bigint NOT NULL, PRIMARY KEY (minute, kind, shard))",
            'CREATE TABLE stats_hours (dim text COLLATE "C" NOT NULL, hour timestamptz NOT NULL, '
            'key text COLLATE "C" NOT NULL, shard smallint NOT NULL, label text, n bigint NOT NULL, '
            "PRIMARY KEY (dim, hour, key, shard))",
            'CREATE TABLE stats_sensors (sensor text COLLATE "C" NOT NULL, shard smallint NOT NULL, '
            "last_ingest_ts timestamptz NOT NULL, PRIMARY KEY (sensor, shard))",
        ],
    ),
    (
        2,
        [  # Arrival order, which the restart replay must follow as the detectors did: a batch's
            # events share one ingest_ts, and their ids are random within a millisecond, so
            # (ingest_ts, id) lost it. The writer's staging table takes the default, so each
            # event is numbered as the COPY reads it; rows stored before are numbered as they replayed.
            "CREATE SEQUENCE events_arrival_seq AS bigint",
            "ALTER TABLE events ADD COLUMN arrival bigint",
            "UPDATE events SET arrival = o.n FROM (SELECT ts, id, row_number() OVER (ORDER BY ingest_ts, id) AS n "
            "FROM events) o WHERE events.ts = o.ts AND events.id = o.id",
            "SELECT setval('events_arrival_seq', (SELECT count(*) + 1 FROM events), false)",
            "ALTER TABLE events ALTER COLUMN arrival SET DEFAULT nextval('events_arrival_seq')",
            "ALTER TABLE events ALTER COLUMN arrival SET NOT NULL",
            "CREATE INDEX events_arrival ON events (arrival)",
        ],
    ),
    (3, postgres_keyed.MIGRATION),  # stats_hours keyed by kind and outcome, all nine lists, and stats_days
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Advisory lock keys (any constants unlikely to clash with another application's).
MIGRATION_LOCK = 0x6861_0001
PARTITION_LOCK = 0x6861_0002
RETENTION_LOCK = 0x6861_0003

# Days (UTC) around today that get a partition of their own; the rest go to events_default.
FUTURE_DAYS = 2
DEFAULT_PAST_DAYS = 400


def partition_name(day: date) -> str:
    return f"events_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day of a daily partition's name, None for another table."""
    if not name.startswith("events_p") or len(name) != 16 or not name[8:].isdigit():
        return None
    return datetime.strptime(name[8:], "%Y%m%d").replace(tzinfo=UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _create_partition_sql(day: date) -> list[str]:
    """Statements that create `day`'s partition, moving in what the default partition holds
    for that day (a CREATE ... PARTITION OF would fail on such rows)."""
    name, start, end = partition_name(day), day_start(day), day_start(day + timedelta(days=1))
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    return [
        f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        f"WITH moved AS (DELETE FROM events_default WHERE ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}' "
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES {bounds}",
    ]


async def partition_days(con: psycopg.AsyncConnection[Any]) -> set[date]:
    """The days that have a partition of their own."""
    rows = await (await con.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass")).fetchall()
    return {day for (name,) in rows if (day := partition_day(name)) is not None}


async def create_partition(con: psycopg.AsyncConnection[Any], day: date) -> None:
    """Create `day`'s partition unless it exists, in a transaction of its own (autocommit
    connection) holding PARTITION_LOCK: writers of several processes may want it at once."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        found = await (await con.execute("SELECT to_regclass(%s)", [partition_name(day)])).fetchone()
        if found is None or found[0] is None:
            for statement in _create_partition_sql(day):
                await con.execute(statement)  # type: ignore[arg-type]  # DDL of our own


async def drop_before(con: psycopg.AsyncConnection[Any], cutoff: datetime) -> set[date]:
    """Delete everything with `ts < cutoff` (a UTC midnight): whole daily partitions, rows of
    the default partition, their rollup buckets and dead letters, in one transaction, so the
    rollups still answer exactly for what remains. Returns the days dropped."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock(%s)", [RETENTION_LOCK])
        expired = {day for day in await partition_days(con) if day_start(day + timedelta(days=1)) <= cutoff}
        for day in sorted(expired):
            await con.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition_name(day))))
        for statement in ("DELETE FROM events_default WHERE ts < %s", "DELETE FROM stats_minutes WHERE minute < %s",
                          "DELETE FROM stats_hours WHERE bucket < %s", "DELETE FROM stats_days WHERE bucket < %s",
                          "DELETE FROM dead_letters WHERE ts < %s"):
            await con.execute(statement, [cutoff])  # type: ignore[arg-type]
    return expired


def utc_day(moment: datetime) -> date:
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).date()


# event_row relies on Event's field order: the scalars, then these six.
assert EVENT_FIELDS[25:] == ("src_geo", "dst_geo", "flags", "warnings", "raw", "v"), EVENT_FIELDS


def event_row(event: Event) -> tuple[Any, ...]:
    """The event as a row in COLUMN_NAMES order (what the writer COPYs)."""
    values = astuple(event)
    # id .. client_version, then src_geo, dst_geo, flags, warnings, raw, v (Event's field order)
    row: list[Any] = list(values[:25])
    row[5] = str(row[5])  # kind
    row[7] = str(row[7])  # outcome
    for geo in (values[25], values[26]):
        if geo is None:
            row.extend((None,) * 7)
        else:
            country, city, lat, lon, asn, org, precision = astuple(geo)
            row.extend((country, city, lat, lon, asn, org, str(precision)))
    row.append([str(flag) for flag in values[27]])
    row.append(list(values[28]))
    row.append(values[29])
    row.append(values[30])
    return tuple(row)
