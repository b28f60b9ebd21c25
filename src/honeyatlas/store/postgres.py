"""The PostgreSQL store: what the roles (docs/scaling.md) share, fed by workers from the bus.

One writer per process, an asyncio task on its own connection, drains a queue of jobs and
commits several at once: the batch's events are COPYed (binary) into a temporary staging
table, then inserted with `ON CONFLICT DO NOTHING` together with the rollups of the rows
actually inserted (postgres_stats.INSERT_EVENTS), the dead letters, the incident changes and
the receipts, in one transaction; only then are the callers answered. `append` is therefore
idempotent by event id (a worker may get a bus message again after a crash). When a group
commit fails, each job is retried alone, so one bad job fails only its own caller.

Reads take a connection from a small pool of their own (REPEATABLE READ, read only, so a
summary's several statements see one snapshot): the API's reads one of
`storage.max_concurrent_reads` connections behind read slots (store/reads.py), each session
with `statement_timeout` = `storage.query_timeout_seconds`; the reads ingest and health wait
for (receipts, the schema version) and the replay at start one connection of their own,
never queued behind the API's and without that timeout. The summary and the histogram come from the
rollups (postgres_stats.py), incidents and profiles from postgres_profiles.py, the schema
and the daily partitions from postgres_schema.py. Timestamps are `timestamptz`, every
session runs in UTC, and values come back as aware UTC datetimes.

What must not live here: SQL of the statistics or profiles, DDL, and anything a URL's
password could leak into (messages name host, port and database only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import psycopg

from honeyatlas.clock import as_utc as _utc
from honeyatlas.errors import QueryTimeout, StoreError
from honeyatlas.event import Event
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
    filters,
    postgres_profiles,
    postgres_schema,
    postgres_stats,
)
from honeyatlas.store.columns import row_to_event
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.postgres_connect import connect, describe
from honeyatlas.store.postgres_schema import COLUMNS_SQL, COPY_TYPES
from honeyatlas.store.reads import ReadSlots

log = logging.getLogger(__name__)

_RETENTION_INTERVAL_SECONDS = 3600.0
_incident_encoder = msgspec.json.Encoder()


class _WriteJob:
    __slots__ = ("dead_letters", "done", "events", "incidents", "receipt")

    def __init__(self, events: list[Event], dead_letters: list[DeadLetter], receipt: Receipt | None,
                 incidents: list[Incident]) -> None:
        self.events = events
        self.dead_letters = dead_letters
        self.receipt = receipt
        self.incidents = incidents
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class PostgresStore:
    """Store protocol on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        metrics: Metrics,
        max_pending_events: int,
        write_batch_max_events: int,
        receipt_ttl_seconds: float = 86400.0,
        retention_days: int = 0,
        shard: int = 0,
        query_timeout_seconds: float = 10.0,
        max_concurrent_reads: int = 2,
        max_queued_reads: int = 64,
    ) -> None:
        self._url = url
        self._where = describe(url)
        self._metrics = metrics
        self._max_pending = max_pending_events
        self._batch_max = write_batch_max_events
        self._receipt_ttl = timedelta(seconds=receipt_ttl_seconds)
        self._retention_days = retention_days
        self._shard = shard
        self._pending = 0
        self._queue: asyncio.Queue[_WriteJob | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._write_con: psycopg.AsyncConnection[Any] | None = None
        self._readers: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._read_cons: list[psycopg.AsyncConnection[Any]] = []
        self._query_timeout = query_timeout_seconds
        self._reads = ReadSlots(concurrent=max_concurrent_reads, queued=max_queued_reads,
                                wait_seconds=query_timeout_seconds, metrics=metrics)
        self._internal_con: psycopg.AsyncConnection[Any] | None = None
        self._internal_lock = asyncio.Lock()
        self._partitions: set[date] = set()
        self._commits = 0
        metrics.gauge("honeyatlas_store_pending_events", lambda: [((), self._pending)])

    @property
    def pending_events(self) -> int:
        return self._pending

    def has_room_for(self, count: int) -> bool:
        return self._pending + count <= self._max_pending

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        con = await connect(self._url, self._where)
        try:
            await self._migrate(con)
        except BaseException:
            await con.close()
            raise
        self._write_con = con
        try:
            await self._prepare_writer(con)
            for _ in range(self._reads.concurrent):
                reader = await self._connect_reader()
                self._read_cons.append(reader)
                self._readers.put_nowait(reader)
            self._internal_con = await connect(self._url, self._where)
        except BaseException:
            await self.stop()  # closes what was opened
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")
        if self._retention_days > 0:
            self._retention = asyncio.create_task(self._retention_loop(), name="postgres-retention")

    async def _retention_loop(self) -> None:
        """Drop expired days now and every hour after; every worker runs it, the advisory lock
        lets one at a time work and the others find nothing left to drop."""
        while True:
            try:
                dropped = await self.drop_expired_partitions(datetime.now(UTC))
                if dropped:
                    log.info("retention: dropped %d daily partitions older than %d days", dropped,
                             self._retention_days)
            except StoreError as exc:
                log.warning("%s; will retry in an hour", exc)
            await asyncio.sleep(_RETENTION_INTERVAL_SECONDS)

    async def _migrate(self, con: psycopg.AsyncConnection[Any]) -> None:
        """Apply the missing migrations in one transaction; the advisory lock makes processes
        starting together wait for the first one instead of migrating twice."""
        try:
            async with con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock(%s)", [postgres_schema.MIGRATION_LOCK])
                await con.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                                  "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL)")
                row = await (await con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")).fetchone()
                current = row[0] if row else 0
                if current > postgres_schema.SCHEMA_VERSION:
                    raise StoreError(
                        f"the database at {self._where} has schema version {current}, newer than this honeyatlas "
                        f"({postgres_schema.SCHEMA_VERSION}); upgrade honeyatlas"
                    )
                if 0 < current < postgres_schema.SCHEMA_VERSION:  # a rebuild can take minutes: say so first
                    log.warning("upgrading the database at %s from schema version %d to %d (rollups are rebuilt "
                                "from the stored events: minutes per 10 million)", self._where, current,
                                postgres_schema.SCHEMA_VERSION)
                for version, statements in postgres_schema.MIGRATIONS:
                    if version > current:
                        for statement in statements:
                            await con.execute(statement)  # type: ignore[arg-type]  # DDL of our own
                        await con.execute("INSERT INTO schema_migrations VALUES (%s, now())", [version])
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the database at {self._where}: {_first_line(exc)}") from exc

    async def _prepare_writer(self, con: psycopg.AsyncConnection[Any]) -> None:
        # With the defaults: `arrival` numbers the rows in the order the COPY reads them.
        await con.execute("CREATE TEMPORARY TABLE IF NOT EXISTS staging (LIKE events INCLUDING DEFAULTS) "
                          "ON COMMIT DELETE ROWS")
        self._partitions = await postgres_schema.partition_days(con)

    async def stop(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
            self._retention = None
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        for con in [*self._read_cons, *(c for c in (self._write_con, self._internal_con) if c is not None)]:
            await con.close()
        self._read_cons.clear()
        self._readers = asyncio.Queue()
        self._write_con = self._internal_con = None

    # ------------------------------------------------------------------ writes

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
        job = _WriteJob(events, dead_letters, receipt, incidents or [])
        self._pending += len(events)
        self._queue.put_nowait(job)
        await job.done

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            jobs, count = [first], len(first.events)
            while count < self._batch_max and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                count += len(job.events)
            try:
                await self._commit_jobs(jobs)
            finally:
                self._pending -= count

    async def _commit_jobs(self, jobs: list[_WriteJob]) -> None:
        try:
            await self._commit(jobs)
            errors: list[BaseException | None] = [None] * len(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                errors = [self._write_error(exc)]
            else:  # retry each job alone: only the bad ones fail
                log.warning("a group commit of %d jobs failed (%s); retrying them one by one", len(jobs),
                            _first_line(exc))
                errors = []
                for job in jobs:
                    try:
                        await self._commit([job])
                        errors.append(None)
                    except Exception as single:
                        errors.append(self._write_error(single))
        for job, error in zip(jobs, errors, strict=True):
            if job.done.done():
                continue
            if error is None:
                job.done.set_result(None)
            else:
                job.done.set_exception(error)

    def _write_error(self, exc: BaseException) -> StoreError:
        return exc if isinstance(exc, StoreError) else StoreError(f"write to {self._where} failed: {_first_line(exc)}")

    async def _writer_connection(self) -> psycopg.AsyncConnection[Any]:
        """The writer's connection, opened again if the server dropped it."""
        if self._write_con is None or self._write_con.closed or self._write_con.broken:
            if self._write_con is not None:
                with contextlib.suppress(psycopg.Error):
                    await self._write_con.close()
            self._write_con = await connect(self._url, self._where)
            await self._prepare_writer(self._write_con)
        return self._write_con

    async def _commit(self, jobs: list[_WriteJob]) -> None:
        con = await self._writer_connection()
        events = [e for job in jobs for e in job.events]
        await self._ensure_partitions(con, {postgres_schema.utc_day(e.ts) for e in events})
        incidents = sorted({i.id: i for job in jobs for i in job.incidents}.values(), key=lambda i: i.id)
        dead = [d for job in jobs for d in job.dead_letters]
        receipts = {(j.receipt.sensor, j.receipt.key): j.receipt for j in jobs if j.receipt is not None}
        now = datetime.now(UTC)
        async with con.transaction(), con.cursor() as cur:
            if incidents:
                await cur.executemany(
                    "INSERT INTO incidents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET kind = excluded.kind, status = excluded.status, key = excluded.key, "
                    "opened_at = excluded.opened_at, last_seen = excluded.last_seen, "
                    "source_count = excluded.source_count, sensor_count = excluded.sensor_count, "
                    "sources = excluded.sources, body = excluded.body",
                    [(i.id, str(i.kind), str(i.status), i.key, i.opened_at, i.last_seen, i.source_count,
                      len(i.sensors), list(i.sources), _incident_encoder.encode(i).decode()) for i in incidents],
                )
            if events:
                async with cur.copy(f"COPY staging ({COLUMNS_SQL}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(COPY_TYPES)
                    for event in events:
                        await copy.write_row(postgres_schema.event_row(event))
                await cur.execute(postgres_stats.INSERT_EVENTS, {"shard": self._shard})  # type: ignore[arg-type]
                row = await cur.fetchone()
                repeated = len(events) - (row[0] if row else 0)
                if repeated:  # a redelivered message: like the deduplicator's, counted as a drop with its reason
                    self._metrics.inc("honeyatlas_events_dropped_total", repeated, component="store",
                                      reason="already_stored")
            if dead:
                await cur.executemany(
                    "INSERT INTO dead_letters VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(d.ts, d.source, d.sensor, d.format, d.index, d.reason, d.raw) for d in dead],
                )
            for key in sorted(receipts):
                r = receipts[key]
                await cur.execute(
                    "INSERT INTO idempotency_receipts VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sensor, key) "
                    "DO UPDATE SET digest = excluded.digest, response = excluded.response, ts = excluded.ts",
                    [r.sensor, r.key, r.digest, r.response, now],
                )
            self._commits += 1
            if self._commits % 1000 == 1:  # bounded: receipts older than the TTL answer nothing anyway
                await cur.execute("DELETE FROM idempotency_receipts WHERE ts < %s", [now - self._receipt_ttl])
        self._metrics.inc("honeyatlas_store_commits_total")

    def _own_partition(self, day: date, today: date) -> bool:
        past = self._retention_days or postgres_schema.DEFAULT_PAST_DAYS
        return today - timedelta(days=past) <= day <= today + timedelta(days=postgres_schema.FUTURE_DAYS)

    async def _ensure_partitions(self, con: psycopg.AsyncConnection[Any], days: set[date]) -> None:
        """Create the daily partitions a batch needs, each in its own committed transaction
        before the batch's (DDL would hold locks on `events` for the whole commit)."""
        today = datetime.now(UTC).date()
        for day in sorted(d for d in days - self._partitions if self._own_partition(d, today)):
            await self._create_partition(con, day)

    async def _create_partition(self, con: psycopg.AsyncConnection[Any], day: date) -> None:
        await postgres_schema.create_partition(con, day)
        self._partitions.add(day)

    async def drop_expired_partitions(self, now: datetime) -> int:
        """Drop the events older than `retention_days` whole UTC days before `now` (their daily
        partitions, and their rows in the default partition), their rollup buckets and dead
        letters, in one transaction. Returns the partitions dropped; 0 when retention is off."""
        if self._retention_days <= 0:
            return 0
        cutoff = postgres_schema.day_start(postgres_schema.utc_day(now - timedelta(days=self._retention_days)))
        con = await connect(self._url, self._where)
        try:
            expired = await postgres_schema.drop_before(con, cutoff)
        except psycopg.Error as exc:
            raise StoreError(f"retention at {self._where} failed: {_first_line(exc)}") from exc
        finally:
            await con.close()
        self._partitions -= expired
        return len(expired)

    # ------------------------------------------------------------------ reads

    async def _connect_reader(self) -> psycopg.AsyncConnection[Any]:
        """An API read connection: every statement on it is cancelled by the server after the
        query timeout, and none is JIT-compiled."""
        con = await connect(self._url, self._where)
        await con.execute(f"SET statement_timeout = {max(1, round(self._query_timeout * 1000))}")
        # The API's reads are short aggregates over many partitions, which JIT compiles once per
        # partition: a third to a half of each 30-day summary list at 10M events was compiling
        # (docs/performance.md, "PostgreSQL" under "Filtered views"), more than it saved.
        await con.execute("SET jit = off")
        return con

    @contextlib.asynccontextmanager
    async def _snapshot(self, query: str) -> AsyncIterator[Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]]:
        """A `read(sql, params)` for the API query `query` (its name in metrics) whose
        statements all see one snapshot; in a read slot, each statement bounded by the timeout."""
        if not self._read_cons:
            raise StoreError("store is not started")
        async with self._reads.slot(query):
            con = await self._readers.get()  # as many connections as slots: never waits
            try:
                if con.broken or con.closed:
                    con = await self._replace_reader(con)
                async with self._transaction(con) as read:
                    yield read
            except psycopg.errors.QueryCanceled as exc:
                self._metrics.inc("honeyatlas_queries_timed_out_total", query=query)
                raise QueryTimeout(query, self._query_timeout) from exc
            finally:
                self._readers.put_nowait(con)

    @contextlib.asynccontextmanager
    async def _internal(self) -> AsyncIterator[Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]]:
        """A snapshot for the reads ingest and health wait for: a connection of their own, no
        slot, no timeout."""
        async with self._internal_lock:
            con = self._internal_con
            if con is None:
                raise StoreError("store is not started")
            if con.broken or con.closed:
                with contextlib.suppress(psycopg.Error):
                    await con.close()
                con = self._internal_con = await connect(self._url, self._where)
            async with self._transaction(con) as read:
                yield read

    @contextlib.asynccontextmanager
    async def _transaction(self, con: psycopg.AsyncConnection[Any]
                           ) -> AsyncIterator[Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]]:
        try:
            await con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

            async def read(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
                return await (await con.execute(sql, params)).fetchall()  # type: ignore[arg-type]

            try:
                yield read
            finally:
                if not con.broken:
                    await con.execute("ROLLBACK")
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.Error as exc:
            raise StoreError(f"read from {self._where} failed: {_first_line(exc)}") from exc

    async def _replace_reader(self, old: psycopg.AsyncConnection[Any]) -> psycopg.AsyncConnection[Any]:
        with contextlib.suppress(psycopg.Error):
            await old.close()
        new = await self._connect_reader()
        self._read_cons[self._read_cons.index(old)] = new
        return new

    def _reader(self, query: str) -> Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]:
        """A one-statement `read(sql, params)` for the API query `query`."""

        async def read(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
            async with self._snapshot(query) as snapshot:
                return await snapshot(sql, params)

        return read

    async def _read(self, query: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return await self._reader(query)(sql, params)

    async def _internal_read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._internal() as read:
            return await read(sql, params)

    async def recent_events(self, limit: int) -> list[Event]:
        # The live snapshot at start, before any API query: the internal connection, no timeout.
        rows = await self._internal_read(f"SELECT {COLUMNS_SQL} FROM events ORDER BY ingest_ts DESC, id DESC LIMIT %s",
                                         [limit])
        return [row_to_event(r) for r in reversed(rows)]

    async def events_for_replay(self, *, window_seconds: float, payload_window_seconds: float, limit: int,
                                chunk_events: int = 20_000) -> AsyncIterator[list[Event]]:
        """As DuckDBStore.events_for_replay, in arrival order (`arrival`), without `raw`; on the
        internal connection (it runs at start and must not time out)."""
        rows = await self._internal_read("SELECT max(ts) FROM events")
        latest = rows[0][0] if rows else None
        if latest is None or limit <= 0:
            return
        since = {"events": latest - timedelta(seconds=window_seconds),
                 "payloads": latest - timedelta(seconds=payload_window_seconds)}
        wanted = ("ts >= least(%(events)s, %(payloads)s) "
                  "AND (ts >= %(events)s OR (sha256 IS NOT NULL AND ts >= %(payloads)s))")
        cut = await self._internal_read(f"SELECT arrival FROM events WHERE {wanted} "
                               "ORDER BY arrival DESC LIMIT 1 OFFSET %(skip)s", {**since, "skip": limit - 1})
        after = cut[0][0] - 1 if cut else 0
        while True:
            found = await self._internal_read(
                f"SELECT {postgres_schema.REPLAY_COLUMNS_SQL}, arrival FROM events WHERE {wanted} "
                "AND arrival > %(after)s ORDER BY arrival LIMIT %(chunk)s", {**since, "after": after, "chunk": chunk_events})
            if not found:
                return
            yield [row_to_event(r[:-1]) for r in found]
            if len(found) < chunk_events:
                return
            after = found[-1][-1]

    async def query_events(self, query: EventQuery) -> list[Event]:
        condition, params = filters.where(query.filter, filters.POSTGRES)
        if query.cursor is not None:  # keyset paging: after the previous page's last (ts, id)
            condition += f" AND (ts, id) {'<' if query.order == 'desc' else '>'} (%s, %s)"
            params.extend(query.cursor)
        direction = query.order.upper()
        sql = (f"SELECT {COLUMNS_SQL} FROM events WHERE {condition} "
               f"ORDER BY ts {direction}, id {direction} LIMIT %s")
        params.append(query.limit)
        return [row_to_event(r) for r in await self._read("query_events", sql, params)]

    async def summary(self, now: datetime, top_n: int) -> Summary:
        async with self._snapshot("summary") as read:
            return await postgres_stats.summary(read, _utc(now), top_n)

    async def window_summary(self, events: EventFilter, top_n: int, *, rollups: bool = True) -> WindowSummary:
        """The window's total and top-N lists, exact: see postgres_stats.window_summary."""
        async with self._snapshot("window_summary") as read:
            return await postgres_stats.window_summary(read, events, top_n, rollups)

    async def histogram(
        self, since: datetime, until: datetime, bucket_seconds: int, by_kind: bool,
        events: EventFilter | None = None,
    ) -> list[tuple[datetime, str | None, int]]:
        async with self._snapshot("histogram") as read:
            return await postgres_stats.histogram(read, _utc(since), _utc(until), bucket_seconds, by_kind, events)

    async def sensor_activity(self, now: datetime) -> dict[str, SensorActivity]:
        hour_ago = now - timedelta(hours=1)
        async with self._snapshot("sensor_activity") as read:
            rows = await postgres_stats.sensor_activity(read, hour_ago)
            rejected = dict(await read("SELECT sensor, count(*) FROM dead_letters WHERE ts >= %s "
                                       "AND sensor IS NOT NULL GROUP BY sensor", [hour_ago]))
        found = {name: SensorActivity(last_seen, count, rejected.get(name, 0)) for name, last_seen, count in rows}
        for name, count in rejected.items():
            found.setdefault(name, SensorActivity(None, 0, count))
        return found

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = await self._read(
            "dead_letters", "SELECT ts, source, sensor, format, idx, reason, raw FROM dead_letters ORDER BY ts DESC LIMIT %s", [limit])
        return [DeadLetter(ts=ts, source=source, sensor=sensor, format=fmt, index=idx, reason=reason,
                           raw=bytes(raw or b"")) for ts, source, sensor, fmt, idx, reason, raw in rows]

    async def find_receipt(self, sensor: str, key: str) -> Receipt | None:
        rows = await self._internal_read(
            "SELECT digest, response FROM idempotency_receipts WHERE sensor = %s AND key = %s AND ts >= %s",
            [sensor, key, datetime.now(UTC) - self._receipt_ttl])
        if not rows:
            return None
        return Receipt(sensor=sensor, key=key, digest=bytes(rows[0][0]), response=bytes(rows[0][1]))

    async def schema_version(self) -> int:
        rows = await self._internal_read("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    async def query_incidents(self, query: IncidentQuery) -> list[Incident]:
        return await postgres_profiles.query_incidents(self._reader("query_incidents"), query)

    async def get_incident(self, incident_id: str) -> Incident | None:
        return await postgres_profiles.get_incident(self._reader("get_incident"), incident_id)

    async def attacker_profile(self, ip: str, limit: int) -> AttackerProfile | None:
        async with self._snapshot("attacker_profile") as read:
            return await postgres_profiles.attacker_profile(read, ip, limit)

    async def malware_profile(self, sha256: str, limit: int) -> MalwareProfile | None:
        async with self._snapshot("malware_profile") as read:
            return await postgres_profiles.malware_profile(read, sha256, limit)

    async def attacker_summaries(
        self, *, since: datetime, until: datetime, min_sensors: int, limit: int, events: EventFilter | None = None
    ) -> list[AttackerSummary]:
        async with self._snapshot("attacker_summaries") as read:
            return await postgres_profiles.attacker_summaries(read, since=since, until=until,
                                                              min_sensors=min_sensors, limit=limit, events=events)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
