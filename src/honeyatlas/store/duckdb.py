"""The embedded default store: DuckDB in the data directory.

One writer thread owns every write: it drains a queue of batches, turns them into one Arrow
table, appends it in one transaction, and only then resolves the callers' futures (a source
acknowledges only what is durable). Reads run on short-lived cursors in threads of their
own, so queries never wait for the writer nor block the event loop: the API's reads on
`storage.max_concurrent_reads` threads behind read slots (store/reads.py), each interrupted
after `storage.query_timeout_seconds`; the reads ingest and health wait for (receipts, the
schema version) on one thread of their own, never queued behind them. DuckDB's memory limit
and thread count come from the config (`storage.duckdb_*`). Between appends the writer also
folds new events into the dashboard rollups (duckdb_stats.py) every few seconds, so the
summary and the histogram never scan a day of events. Timestamps are stored as naive UTC.
The DDL lives in MIGRATIONS, applied in order and recorded in `schema_migrations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import msgspec
import pyarrow as pa
from msgspec.structs import astuple

from honeyatlas.clock import naive_utc as _naive_utc
from honeyatlas.errors import QueryTimeout, StoreError
from honeyatlas.event import EVENT_FIELDS, GEO_FIELDS, Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.profile import AttackerProfile, AttackerSummary, MalwareProfile
from honeyatlas.store import (
    DeadLetter,
    EventQuery,
    IncidentQuery,
    Receipt,
    SensorActivity,
    Summary,
    WindowSummary,
    duckdb_addresses,
    duckdb_profiles,
    duckdb_stats,
    filters,
)
from honeyatlas.store.columns import COLUMN_NAMES, EVENT_ARROW_SCHEMA, EVENT_COLUMNS, SCALAR_NAMES, row_to_event
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.reads import ReadSlots

log = logging.getLogger(__name__)
T = TypeVar("T")

_REPLAY_COLUMNS = ", ".join("NULL AS raw" if name == "raw" else name for name in COLUMN_NAMES)

DEAD_LETTER_ARROW_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us")),
        ("source", pa.string()),
        ("sensor", pa.string()),
        ("format", pa.string()),
        ("idx", pa.int32()),
        ("reason", pa.string()),
        ("raw", pa.binary()),
    ]
)

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE events ("
            + ", ".join(f"{name} {sql}" for name, sql, _ in EVENT_COLUMNS)
            + ")",
            "CREATE TABLE dead_letters (ts TIMESTAMP NOT NULL, source VARCHAR NOT NULL, sensor VARCHAR, "
            "format VARCHAR NOT NULL, idx INTEGER NOT NULL, reason VARCHAR NOT NULL, raw BLOB)",
        ],
    ),
]
MIGRATIONS.append(
    (
        2,
        [
            "CREATE TABLE idempotency_receipts (sensor VARCHAR NOT NULL, key VARCHAR NOT NULL, digest BLOB NOT NULL, "
            "response BLOB NOT NULL, ts TIMESTAMP NOT NULL, PRIMARY KEY (sensor, key))",
        ],
    )
)
MIGRATIONS.append(
    (
        3,
        [
            "CREATE TABLE incidents (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, status VARCHAR NOT NULL, "
            "key VARCHAR NOT NULL, opened_at TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL, "
            "source_count INTEGER NOT NULL, sensor_count INTEGER NOT NULL, sources VARCHAR[] NOT NULL, "
            "body VARCHAR NOT NULL)",
            "CREATE INDEX incidents_last_seen ON incidents (last_seen)",
        ],
    )
)
MIGRATIONS.append(
    (
        4,
        [  # dashboard rollups, maintained by duckdb_stats.fold; the first fold fills them from the events
            "CREATE TABLE stats_window (dim VARCHAR NOT NULL, key VARCHAR NOT NULL, label VARCHAR, n BIGINT NOT NULL)",
            "CREATE TABLE stats_minutes (minute TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, n BIGINT NOT NULL)",
            "CREATE TABLE stats_state (folded_rowid BIGINT NOT NULL, window_start TIMESTAMP NOT NULL)",
            "INSERT INTO stats_state VALUES (-1, TIMESTAMP '1970-01-01 00:00:00')",
        ],
    )
)
MIGRATIONS.append(
    (
        5,
        [  # each sensor's latest ingest time, folded like the rollups of migration 4
            "CREATE TABLE stats_sensors (sensor VARCHAR NOT NULL, last_ingest_ts TIMESTAMP NOT NULL)",
            "INSERT INTO stats_sensors SELECT sensor, max(ingest_ts) FROM events "
            "WHERE rowid <= (SELECT folded_rowid FROM stats_state) GROUP BY sensor",
        ],
    )
)
MIGRATIONS.append(
    (
        6,
        [  # IPv4 sources as integers (duckdb_addresses.py); the rows already stored are keyed when the store opens
            f"ALTER TABLE events ADD COLUMN {duckdb_addresses.COLUMN} UINTEGER",
            "CREATE TABLE address_keys (keyed_rowid BIGINT NOT NULL)",
            "INSERT INTO address_keys VALUES (-1)",
        ],
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
# The writer's INSERT: the shared columns from the Arrow batch, and the DuckDB-only key.
_INSERT_EVENTS = (f"INSERT INTO events ({', '.join(COLUMN_NAMES)}, {duckdb_addresses.COLUMN}) "
                  f"SELECT *, {duckdb_addresses.KEY} FROM event_batch")
# The writer folds when this many events are not folded yet, even before the interval ends:
# it bounds what a dashboard query must count from the raw events.
FOLD_MAX_EVENTS = 50_000
# How far the rollup window's start trails `now - 24 h`: a query whose `now` was taken just
# before a fold still finds the window starting before its own (else it adds events back).
_WINDOW_LAG = timedelta(seconds=1)
INCIDENT_ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("key", pa.string()),
        ("opened_at", pa.timestamp("us")),
        ("last_seen", pa.timestamp("us")),
        ("source_count", pa.int32()),
        ("sensor_count", pa.int32()),
        ("sources", pa.list_(pa.string())),
        ("body", pa.string()),
    ]
)
_incident_encoder = msgspec.json.Encoder()


def incidents_to_arrow(incidents: list[Incident]) -> pa.Table:
    """One row per incident id, the latest state winning (an id may change twice in a commit)."""
    latest = list({incident.id: incident for incident in incidents}.values())
    return pa.table(
        {
            "id": [i.id for i in latest],
            "kind": [str(i.kind) for i in latest],
            "status": [str(i.status) for i in latest],
            "key": [i.key for i in latest],
            "opened_at": [_naive_utc(i.opened_at) for i in latest],
            "last_seen": [_naive_utc(i.last_seen) for i in latest],
            "source_count": [i.source_count for i in latest],
            "sensor_count": [len(i.sensors) for i in latest],
            "sources": [list(i.sources) for i in latest],
            "body": [_incident_encoder.encode(i).decode() for i in latest],
        },
        schema=INCIDENT_ARROW_SCHEMA,
    )


def events_to_arrow(events: list[Event]) -> pa.Table:
    """Columnar copy of a batch, in EVENT_COLUMNS order.

    Transposed in C (`astuple` + `zip`) rather than with a getattr per field and event: this
    runs on the writer thread, which shares the GIL with the ingest loop.
    """
    by_field = dict(zip(EVENT_FIELDS, zip(*map(astuple, events), strict=True), strict=True)) if events else {}
    if not by_field:
        return EVENT_ARROW_SCHEMA.empty_table()
    # ts and ingest_ts as they are: Arrow stores an aware datetime as naive UTC itself, 3x
    # faster than converting each one here.
    columns: dict[str, Any] = {name: by_field[name] for name in SCALAR_NAMES}
    for side in ("src", "dst"):
        geos = by_field[f"{side}_geo"]
        present = [astuple(g) if g is not None else None for g in geos]
        for position, name in enumerate(GEO_FIELDS):
            columns[f"{side}_{name}"] = [None if g is None else g[position] for g in present]
    for name in ("flags", "warnings", "raw", "v"):
        columns[name] = by_field[name]
    return pa.table(columns, schema=EVENT_ARROW_SCHEMA)


# Events converted to Arrow per call on the writer thread. One call holds the GIL from start to
# end (the transpose is one C call), so the event loop waits for it: 100,000 events at once
# held it ~2.5 s; slices of 2,000 hold it ~40 ms each, and the whole batch converts in half
# the time (measured; docs/performance.md, "Big batches").
ARROW_SLICE_EVENTS = 2000


def _events_to_arrow_in_slices(events: list[Event]) -> pa.Table:
    if len(events) <= ARROW_SLICE_EVENTS:
        return events_to_arrow(events)
    return pa.concat_tables(
        [events_to_arrow(events[start:start + ARROW_SLICE_EVENTS]) for start in range(0, len(events), ARROW_SLICE_EVENTS)]
    )


class _WriteJob:
    __slots__ = ("dead_letters", "done", "events", "incidents", "loop", "receipt")

    def __init__(
        self,
        events: list[Event],
        dead_letters: list[DeadLetter],
        receipt: Receipt | None,
        incidents: list[Incident],
        loop: asyncio.AbstractEventLoop,
    ):
        self.events = events
        self.dead_letters = dead_letters
        self.receipt = receipt
        self.incidents = incidents
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class DuckDBStore:
    """Store protocol on an embedded DuckDB file."""

    def __init__(
        self,
        path: Path,
        *,
        max_pending_events: int,
        write_batch_max_events: int,
        metrics: Metrics,
        receipt_ttl_seconds: float = 86400.0,
        stats_fold_interval_seconds: float = 5.0,
        checkpoint_threshold_mib: int = 256,
        query_timeout_seconds: float = 10.0,
        max_concurrent_reads: int = 2,
        max_queued_reads: int = 64,
        memory_limit_mib: int = 0,
        threads: int = 0,
        read_niceness: int = 0,
        retention_days: int = 0,
        retention_interval_seconds: float = 3600.0,
    ):
        self._path = path
        self._retention = timedelta(days=retention_days)
        self._retention_interval = retention_interval_seconds
        self._retained_at = -retention_interval_seconds
        self._memory_limit_mib = memory_limit_mib
        self._threads = threads
        self._read_niceness = read_niceness
        self._query_timeout = query_timeout_seconds
        self._reads = ReadSlots(concurrent=max_concurrent_reads, queued=max_queued_reads,
                                wait_seconds=query_timeout_seconds, metrics=metrics)
        self._api_pool: ThreadPoolExecutor | None = None
        self._internal_pool: ThreadPoolExecutor | None = None
        self._checkpoint_mib = checkpoint_threshold_mib
        self._max_pending = max_pending_events
        self._batch_max = write_batch_max_events
        self._metrics = metrics
        self._con: duckdb.DuckDBPyConnection | None = None
        self._queue: queue.SimpleQueue[_WriteJob | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._receipt_ttl = timedelta(seconds=receipt_ttl_seconds)
        self._commits = 0
        self._fold_interval = stats_fold_interval_seconds
        self._unfolded = 0
        self._folded_at = 0.0
        metrics.gauge("honeyatlas_store_pending_events", lambda: [((), self._pending)])

    @property
    def pending_events(self) -> int:
        return self._pending

    def has_room_for(self, count: int) -> bool:
        return self._pending + count <= self._max_pending

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        self._api_pool = ThreadPoolExecutor(self._reads.concurrent, thread_name_prefix="duckdb-read",
                                            initializer=_yield_priority, initargs=(self._read_niceness,))
        self._internal_pool = ThreadPoolExecutor(1, thread_name_prefix="duckdb-ingest-read")
        self._writer = threading.Thread(target=self._write_loop, name="duckdb-writer", daemon=True)
        self._writer.start()

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # DuckDB checkpoints in the commit that takes its write-ahead log past this size,
            # rewriting the table's last, partly filled row group each time: at the default
            # 16 MB that was most of the writer's time and stalled commits up to 1.4 s.
            settings: dict[str, Any] = {"checkpoint_threshold": f"{self._checkpoint_mib}MiB"}
            if self._memory_limit_mib:
                settings["memory_limit"] = f"{self._memory_limit_mib}MiB"
            if self._threads:
                settings["threads"] = self._threads
            self._con = duckdb.connect(str(self._path), config=settings)
        except duckdb.IOException as exc:
            raise StoreError(
                f"cannot open {self._path}: {exc}. Is another honeyatlas server using this --data-dir?"
            ) from exc
        try:
            self._migrate(self._con)
            duckdb_addresses.key_addresses(self._con)  # rows stored before migration 6 or without the key
            self._fold(self._con)  # a store filled by an older version or cut off by a crash
        except BaseException:
            self._con.close()
            self._con = None
            raise

    @staticmethod
    def _migrate(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the data directory has schema version {current}, newer than this honeyatlas "
                f"({SCHEMA_VERSION}); upgrade honeyatlas"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            con.begin()
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)", [version])
            con.commit()

    async def stop(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        for pool in (self._api_pool, self._internal_pool):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown)
        self._api_pool = self._internal_pool = None
        if self._con is not None:
            con, self._con = self._con, None
            await asyncio.to_thread(con.close)

    async def append(
        self,
        events: list[Event],
        dead_letters: list[DeadLetter],
        receipt: Receipt | None = None,
        incidents: list[Incident] | None = None,
    ) -> None:
        if not events and not dead_letters and receipt is None and not incidents:
            return
        if self._writer is None:
            raise StoreError("store is not started")
        job = _WriteJob(events, dead_letters, receipt, incidents or [], asyncio.get_running_loop())
        with self._pending_lock:  # dead letters count against the bound too: a flood of garbage fills it alike
            self._pending += len(events) + len(dead_letters)
        self._queue.put(job)
        await job.done

    def _write_loop(self) -> None:
        assert self._con is not None
        con = self._con.cursor()
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._fold_interval)
            except queue.Empty:  # idle: the window start still moves on
                self._fold(con)
                self._retain(con)
                continue
            if first is None:
                break
            jobs = [first]
            count = len(first.events)
            while count < self._batch_max:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                count += len(job.events)
            error = self._commit(con, jobs)
            with self._pending_lock:
                self._pending -= count + sum(len(job.dead_letters) for job in jobs)
            for job in jobs:
                job.loop.call_soon_threadsafe(_resolve, job.done, error)
            if error is None:
                self._unfolded += count
            if self._unfolded >= FOLD_MAX_EVENTS or time.monotonic() - self._folded_at >= self._fold_interval:
                self._fold(con)
            self._retain(con)
        self._fold(con)
        con.close()

    def _retain(self, con: duckdb.DuckDBPyConnection) -> None:
        """`storage.retention_days`: delete the raw events and dead letters older than that,
        once per retention interval (the first time when the writer starts). The rollups keep
        counting them: everything is folded first, and the cut never passes the 24-hour
        window's start, so `stats_minutes` (the histogram's history) and `stats_window` stay
        exact. DuckDB may renumber rowids when the checkpoint after a delete compacts row
        groups (measured), so `folded_rowid` is then set to the highest rowid left: every
        remaining event is folded, and new ones are appended above it."""
        if not self._retention or time.monotonic() - self._retained_at < self._retention_interval:
            return
        self._retained_at = time.monotonic()
        self._fold(con)
        try:
            con.begin()
            folded, window_start = con.execute("SELECT folded_rowid, window_start FROM stats_state").fetchall()[0]
            if con.execute("SELECT count(*) FROM events WHERE rowid > ?", [folded]).fetchall()[0][0]:
                con.rollback()  # the fold failed: deleting unfolded events would lose them from the rollups
                return
            cutoff = min(_naive_utc(datetime.now(UTC)) - self._retention, window_start)
            events = con.execute("DELETE FROM events WHERE ts < ?", [cutoff]).fetchall()[0][0]
            dead = con.execute("DELETE FROM dead_letters WHERE ts < ?", [cutoff]).fetchall()[0][0]
            con.commit()
            if events:
                con.execute("CHECKPOINT")
                con.execute("UPDATE stats_state SET folded_rowid = (SELECT coalesce(max(rowid), -1) FROM events)")
                duckdb_addresses.mark_all_keyed(con)
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                con.rollback()
            log.exception("retention: deleting events older than %s failed; will retry", self._retention)
            self._metrics.inc("honeyatlas_store_retention_failures_total")
            return
        if events or dead:
            log.info("retention: deleted %d events and %d dead letters older than %s", events, dead, cutoff)
            self._metrics.inc("honeyatlas_store_retention_deleted_total", events, table="events")
            self._metrics.inc("honeyatlas_store_retention_deleted_total", dead, table="dead_letters")

    def _fold(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fold committed events into the dashboard rollups (after the callers were answered:
        it delays the next commit, never an acknowledgement). A failure is logged and retried."""
        began = time.monotonic()
        try:
            folded = duckdb_stats.fold(con, _naive_utc(datetime.now(UTC)), _WINDOW_LAG)
        except Exception:  # never let it stop the writer: appends matter more than rollups
            log.exception("folding events into the dashboard rollups failed; will retry")
            self._metrics.inc("honeyatlas_store_stats_fold_failures_total")
            return
        finally:
            self._folded_at = time.monotonic()
        self._unfolded = 0
        if folded > 100_000:
            log.info("dashboard rollups: %d events folded in %.1f s", folded, time.monotonic() - began)

    def _commit(self, con: duckdb.DuckDBPyConnection, jobs: list[_WriteJob]) -> BaseException | None:
        events = [e for job in jobs for e in job.events]
        dead = [d for job in jobs for d in job.dead_letters]
        receipts = [job.receipt for job in jobs if job.receipt is not None]
        incidents = [i for job in jobs for i in job.incidents]
        try:
            con.begin()
            if incidents:
                con.register("incident_batch", incidents_to_arrow(incidents))
                con.execute("INSERT OR REPLACE INTO incidents SELECT * FROM incident_batch")
                con.unregister("incident_batch")
            if events:
                con.register("event_batch", _events_to_arrow_in_slices(events))
                con.execute(_INSERT_EVENTS)
                con.unregister("event_batch")
            if dead:
                dead_batch = pa.table(
                    {
                        "ts": [_naive_utc(d.ts) for d in dead],
                        "source": [d.source for d in dead],
                        "sensor": [d.sensor for d in dead],
                        "format": [d.format for d in dead],
                        "idx": [d.index for d in dead],
                        "reason": [d.reason for d in dead],
                        "raw": [d.raw for d in dead],
                    },
                    schema=DEAD_LETTER_ARROW_SCHEMA,
                )
                con.register("dead_batch", dead_batch)
                con.execute("INSERT INTO dead_letters SELECT * FROM dead_batch")
                con.unregister("dead_batch")
            for receipt in receipts:
                con.execute(
                    "INSERT OR REPLACE INTO idempotency_receipts VALUES (?, ?, ?, ?, ?)",
                    [receipt.sensor, receipt.key, receipt.digest, receipt.response, _naive_utc(datetime.now(UTC))],
                )
            self._commits += 1
            if self._commits % 1000 == 1:  # bounded: receipts older than the TTL answer nothing anyway
                con.execute(
                    "DELETE FROM idempotency_receipts WHERE ts < ?", [_naive_utc(datetime.now(UTC)) - self._receipt_ttl]
                )
            con.commit()
        except Exception as exc:  # the batch fails as a whole; callers see a StoreError
            with contextlib.suppress(duckdb.Error):
                con.rollback()
            return StoreError(f"write failed: {exc}")
        self._metrics.inc("honeyatlas_store_commits_total")
        return None

    def _reader(self, query: str) -> Callable[[str, list[Any]], Any]:
        """A `read(sql, params)` coroutine for the API query `query` (its name in metrics)."""

        async def read(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = await self._snapshot(
                query, lambda cursor: cursor.execute(sql, params).fetchall())
            return rows

        return read

    async def _read(self, query: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = await self._reader(query)(sql, params)
        return rows

    async def _snapshot(self, query: str, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `work(cursor)` for an API query: in a read slot, on a read thread, interrupted
        after the query timeout; it may read several statements in one transaction (one
        snapshot)."""
        async with self._reads.slot(query):
            return await self._run(self._api_pool, query, work, self._query_timeout)

    async def _internal_read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """A read ingest or health waits for: its own thread, no slot, no timeout."""
        rows: list[tuple[Any, ...]] = await self._run(
            self._internal_pool, "internal", lambda cursor: cursor.execute(sql, params).fetchall(), None)
        return rows

    async def _run(self, pool: ThreadPoolExecutor | None, query: str,
                   work: Callable[[duckdb.DuckDBPyConnection], T], timeout: float | None) -> T:
        if self._con is None or pool is None:
            raise StoreError("store is not started")
        con = self._con
        state: dict[str, Any] = {"cursor": None, "timed_out": False, "cancelled": False}

        def interrupt(reason: str) -> None:
            state[reason] = True
            cursor = state["cursor"]
            if cursor is not None:
                cursor.interrupt()

        def run() -> T:
            cursor = con.cursor()
            state["cursor"] = cursor
            timer = threading.Timer(timeout, interrupt, ["timed_out"]) if timeout is not None else None
            try:
                if state["cancelled"]:
                    raise duckdb.InterruptException("cancelled before it ran")
                if timer is not None:
                    timer.start()
                return work(cursor)
            finally:
                if timer is not None:
                    timer.cancel()
                state["cursor"] = None
                cursor.close()

        running = asyncio.wrap_future(pool.submit(run))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            # The caller went away (a client disconnected): stop the query now, and keep its
            # read slot until the thread is free, so the next read does not queue behind it.
            interrupt("cancelled")
            await asyncio.wait([running])
            if not running.cancelled():
                running.exception()  # retrieved: it ended interrupted, as asked
            raise
        except duckdb.InterruptException:
            if not state["timed_out"]:
                raise
            self._metrics.inc("honeyatlas_queries_timed_out_total", query=query)
            assert timeout is not None
            raise QueryTimeout(query, timeout) from None
        except duckdb.OutOfMemoryException as exc:
            self._metrics.inc("honeyatlas_queries_failed_total", query=query, reason="out_of_memory")
            raise StoreError(f"query {query} needs more memory than storage.duckdb_memory_limit_mib allows "
                             f"({_first_line(exc)}); narrow the request") from exc

    async def recent_events(self, limit: int) -> list[Event]:
        # The live snapshot at start, before any API query: the internal lane, no timeout.
        rows = await self._internal_read(
            f"SELECT {', '.join(COLUMN_NAMES)} FROM events ORDER BY ingest_ts DESC, id DESC LIMIT ?", [limit])
        return [row_to_event(r) for r in reversed(rows)]

    async def events_for_replay(self, *, window_seconds: float, payload_window_seconds: float, limit: int,
                                chunk_events: int = 20_000) -> AsyncIterator[list[Event]]:
        """The latest events, in arrival order, to rebuild in-memory detector state after a
        restart: everything in the last `window_seconds` of event time, plus the events
        carrying a payload hash in the last `payload_window_seconds`; at most `limit`, in
        chunks of at most `chunk_events`. Without `raw`, which no detector reads. On the
        internal lane: it runs at start, before any API query, and must not time out."""
        rows = await self._internal_read("SELECT max(ts) FROM events", [])
        latest = rows[0][0] if rows else None
        if latest is None or limit <= 0:
            return
        wanted = "(ts >= ? OR (sha256 IS NOT NULL AND ts >= ?))"
        since = [latest - timedelta(seconds=window_seconds), latest - timedelta(seconds=payload_window_seconds)]
        # Chunk bounds are rowids found from two columns only: ordering whole rows by rowid
        # made DuckDB materialise every matching row (at 100M events: 2 minutes, 20 GiB).
        nth = f"SELECT rowid FROM events WHERE rowid >= ? AND {wanted} ORDER BY rowid LIMIT 1 OFFSET ?"
        cut = await self._internal_read(f"SELECT rowid FROM events WHERE {wanted} ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                               [*since, limit - 1])
        low = cut[0][0] if cut else -1
        while True:
            bound = await self._internal_read(nth, [low, *since, chunk_events])
            high = bound[0][0] if bound else None
            found = await self._internal_read(
                f"SELECT {_REPLAY_COLUMNS} FROM events WHERE rowid >= ? AND rowid < ? AND {wanted} ORDER BY rowid",
                [low, high if high is not None else 2**62, *since],
            )
            if found:
                yield [row_to_event(r) for r in found]
            if high is None:
                return
            low = high

    async def query_events(self, query: EventQuery) -> list[Event]:
        condition, params = filters.where(query.filter, filters.DUCKDB)
        before = "<" if query.order == "desc" else ">"
        if query.cursor is not None:  # keyset paging: after the previous page's last (ts, id)
            cursor_ts, cursor_id = _naive_utc(query.cursor[0]), query.cursor[1]
            condition += f" AND (ts {before} ? OR (ts = ? AND id {before} ?))"
            params.extend([cursor_ts, cursor_ts, cursor_id])
        direction = query.order.upper()
        sql = (f"SELECT {', '.join(COLUMN_NAMES)} FROM events WHERE {condition} "
               f"ORDER BY ts {direction}, id {direction} LIMIT ?")
        params.append(query.limit)
        return [row_to_event(r) for r in await self._read("query_events", sql, params)]

    async def summary(self, now: datetime, top_n: int) -> Summary:
        """Counts and top-N lists of the last 24 hours, exact, from the rollups (duckdb_stats.py)."""
        moment = _naive_utc(now)
        return await self._snapshot("summary", lambda cursor: duckdb_stats.summary(cursor, moment, top_n))

    async def window_summary(self, events: EventFilter, top_n: int, *, rollups: bool = True) -> WindowSummary:
        """The window's total and top-N lists, exact: see duckdb_stats.window_summary for the
        rule that picks rollups or raw events."""
        now = _naive_utc(datetime.now(UTC))
        return await self._snapshot(
            "window_summary", lambda cursor: duckdb_stats.window_summary(cursor, events, top_n, now, rollups))

    async def histogram(
        self, since: datetime, until: datetime, bucket_seconds: int, by_kind: bool,
        events: EventFilter | None = None,
    ) -> list[tuple[datetime, str | None, int]]:
        """(bucket start, kind or None, events) of the non-empty buckets, exact: see
        duckdb_stats.histogram (buckets are aligned on multiples of `bucket_seconds`)."""
        start, end = _naive_utc(since), _naive_utc(until)
        rows = await self._snapshot(
            "histogram", lambda cursor: duckdb_stats.histogram(cursor, start, end, bucket_seconds, by_kind, events))
        return [(bucket.replace(tzinfo=UTC), kind, n) for bucket, kind, n in rows]

    async def sensor_activity(self, now: datetime) -> dict[str, SensorActivity]:
        hour_ago = _naive_utc(now) - timedelta(hours=1)
        rows = await self._snapshot("sensor_activity", lambda cursor: duckdb_stats.sensor_activity(cursor, hour_ago))
        rejected = dict(
            await self._read(
                "sensor_activity", "SELECT sensor, count(*) FROM dead_letters WHERE ts >= ? AND sensor IS NOT NULL GROUP BY sensor",
                [hour_ago],
            )
        )
        found = {
            name: SensorActivity(last_seen.replace(tzinfo=UTC) if last_seen else None, count, rejected.get(name, 0))
            for name, last_seen, count in rows
        }
        for name, count in rejected.items():
            found.setdefault(name, SensorActivity(None, 0, count))
        return found

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = await self._read(
            "dead_letters", "SELECT ts, source, sensor, format, idx, reason, raw FROM dead_letters ORDER BY ts DESC LIMIT ?", [limit]
        )
        return [
            DeadLetter(ts=ts.replace(tzinfo=UTC), source=source, sensor=sensor, format=fmt, index=idx,
                       reason=reason, raw=bytes(raw or b""))
            for ts, source, sensor, fmt, idx, reason, raw in rows
        ]

    async def find_receipt(self, sensor: str, key: str) -> Receipt | None:
        rows = await self._internal_read(
            "SELECT digest, response FROM idempotency_receipts WHERE sensor = ? AND key = ? AND ts >= ?",
            [sensor, key, _naive_utc(datetime.now(UTC)) - self._receipt_ttl],
        )
        if not rows:
            return None
        return Receipt(sensor=sensor, key=key, digest=bytes(rows[0][0]), response=bytes(rows[0][1]))

    async def schema_version(self) -> int:
        rows = await self._internal_read("SELECT coalesce(max(version), 0) FROM schema_migrations", [])
        return int(rows[0][0])

    async def query_incidents(self, query: IncidentQuery) -> list[Incident]:
        return await duckdb_profiles.query_incidents(self._reader("query_incidents"), query)

    async def get_incident(self, incident_id: str) -> Incident | None:
        return await duckdb_profiles.get_incident(self._reader("get_incident"), incident_id)

    async def attacker_profile(self, ip: str, limit: int) -> AttackerProfile | None:
        return await duckdb_profiles.attacker_profile(self._reader("attacker_profile"), ip, limit)

    async def malware_profile(self, sha256: str, limit: int) -> MalwareProfile | None:
        return await duckdb_profiles.malware_profile(self._reader("malware_profile"), sha256, limit)

    async def attacker_summaries(
        self, *, since: datetime, until: datetime, min_sensors: int, limit: int, events: EventFilter | None = None
    ) -> list[AttackerSummary]:
        return await duckdb_profiles.attacker_summaries(
            self._reader("attacker_summaries"), since=since, until=until, min_sensors=min_sensors, limit=limit,
            events=events,
        )


def _yield_priority(niceness: int) -> None:
    """Run in each API read thread as it starts: `niceness` levels below the rest of the
    process (Linux schedules threads, so the writer and the event loop keep theirs), so the
    CPU a flood of reads takes comes second to ingest. DuckDB's own pool threads are not
    ours: with `storage.duckdb_threads = 1` a read runs on this thread alone."""
    if niceness <= 0 or sys.platform != "linux":
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
