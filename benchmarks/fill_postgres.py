"""Fill a PostgreSQL database with the events of a DuckDB store, the way the store's writer would.

The source is a store filled by benchmarks/fill.py (opened read-only), so both backends hold
the same events. honeyatlas creates the schema (PostgresStore.start runs the migrations);
each UTC day gets its partition from postgres_schema.create_partition, as the writer makes
one before a batch needs it; then the events are read in time order, COPYed in binary
(the writer's column types) into a staging table like the writer's, and moved into `events`
by postgres_stats.INSERT_EVENTS, the writer's own statement, which also updates the rollups
(stats_minutes, stats_hours, stats_sensors) from the rows it inserted. One transaction per
six whole hours of events (the rollups sum what each transaction adds, so they end as many
small batches would leave them); `arrival` numbers the rows as they are copied.

Last, VACUUM ANALYZE: what autovacuum does to an insert-only table soon after (planner
statistics, the visibility map that index-only scans need), done once instead of waited for.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from honeyatlas.metrics import Metrics
from honeyatlas.store import postgres_schema, postgres_stats
from honeyatlas.store.postgres import PostgresStore
from honeyatlas.store.postgres_connect import connect, describe
from honeyatlas.store.postgres_schema import COLUMNS_SQL, COPY_TYPES

_TIMESTAMPS = ("ts", "ingest_ts")  # naive UTC in DuckDB; read as timestamptz in a UTC session
_CHUNK = timedelta(hours=6)  # ~83,000 events of the 10M fill: one transaction each


def fill_postgres(source: Path, url: str, *, log: Any = print) -> dict[str, float]:
    """Copy every event of the DuckDB store file `source` into the database at `url`."""
    return asyncio.run(_fill(source, url, log))


async def _fill(source: Path, url: str, log: Any) -> dict[str, float]:
    store = PostgresStore(url, metrics=Metrics(), max_pending_events=1, write_batch_max_events=1)
    await store.start()  # the migrations
    await store.stop()
    duck = duckdb.connect(str(source), read_only=True)
    con = await connect(url, describe(url))
    began = time.monotonic()
    pending: asyncio.Task[list[tuple[Any, ...]]] | None = None
    try:
        duck.execute("SET TimeZone = 'UTC'")
        duck.execute("SET enable_progress_bar = false")
        first, last = duck.execute("SELECT min(ts), max(ts) FROM events").fetchone() or (None, None)
        if first is None:
            raise RuntimeError(f"{source} holds no events")
        for n in range((last.date() - first.date()).days + 1):
            await postgres_schema.create_partition(con, first.date() + timedelta(days=n))
        await con.execute("CREATE TEMPORARY TABLE staging (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        select = ", ".join(f"{name}::TIMESTAMPTZ" if name in _TIMESTAMPS else name for name in COLUMNS_SQL.split(", "))
        start = first.replace(minute=0, second=0, microsecond=0)
        chunks = [start + n * _CHUNK for n in range(int((last - start) / _CHUNK) + 1)]

        def read(since: datetime) -> list[tuple[Any, ...]]:
            return duck.execute(f"SELECT {select} FROM events WHERE ts >= ? AND ts < ? ORDER BY ts, id",
                                [since, since + _CHUNK]).fetchall()

        # DuckDB reads the next chunk (in a thread) while PostgreSQL inserts this one.
        rows, pending = 0, asyncio.create_task(asyncio.to_thread(read, chunks[0]))
        for n in range(len(chunks)):
            batch = await pending
            if n + 1 < len(chunks):
                pending = asyncio.create_task(asyncio.to_thread(read, chunks[n + 1]))
            rows += await _insert(con, batch)
            if (n + 1) % 4 == 0 or n + 1 == len(chunks):
                log(f"{chunks[n] + _CHUNK:%Y-%m-%d %H:%M}: {rows:,} events, "
                    f"{rows / (time.monotonic() - began):,.0f} a second")
        copy_seconds = time.monotonic() - began
        await con.execute("VACUUM ANALYZE")
        vacuum_seconds = time.monotonic() - began - copy_seconds
        size = await (await con.execute("SELECT pg_database_size(current_database())")).fetchone()
    finally:
        if pending is not None:  # a read still running must end before its connection closes
            await asyncio.wait([pending])
        await con.close()
        duck.close()
    return {"rows": rows, "seconds": copy_seconds, "rows_per_second": rows / copy_seconds if copy_seconds else 0.0,
            "vacuum_analyze_seconds": vacuum_seconds, "database_mib": (size[0] if size else 0) / 1048576}


async def _insert(con: Any, batch: list[tuple[Any, ...]]) -> int:
    """Events into `events` and the rollups, in one transaction, as the writer commits a batch."""
    async with con.transaction(), con.cursor() as cur:
        async with cur.copy(f"COPY staging ({COLUMNS_SQL}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            for row in batch:
                await copy.write_row(row)
        await cur.execute(postgres_stats.INSERT_EVENTS, {"shard": 0})
        found = await cur.fetchone()
    return int(found[0]) if found else 0


def main() -> None:  # pragma: no cover - a manual entry point
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fill_postgres", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="events.duckdb of a store filled by benchmarks/fill.py")
    parser.add_argument("url", help="postgresql://... of an empty database")
    args = parser.parse_args()
    print(fill_postgres(args.source, args.url))


if __name__ == "__main__":
    main()

