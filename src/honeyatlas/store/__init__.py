"""Storage: one small `Store` protocol and the backends behind it.

`open_store(config, metrics)` (store/open.py) is the only place that picks a backend by
`storage.backend`: DuckDB (embedded, in the data directory, the default) or PostgreSQL (the
roles, docs/scaling.md). With DuckDB the sensor registry lives beside it in SQLite
(`honeyatlas.store.registry`) because several processes (the server and the `sensor`
command) must be able to change it at once, which DuckDB's single-writer file lock forbids;
with PostgreSQL it lives in the same database.

What must not live here: anything a backend does not share. A backend's own mechanics
(DuckDB's rowids and writer queue, PostgreSQL's partitions) stay in its modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal, Protocol

import msgspec

from honeyatlas.event import Event
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.profile import AttackerProfile, AttackerSummary, MalwareProfile
from honeyatlas.store.filters import EventFilter


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A raw record that could not become an event, kept with the reason."""

    ts: datetime
    source: str
    sensor: str | None
    format: str
    index: int
    reason: str
    raw: bytes


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one idempotent request, committed in the same transaction as its events,
    so a retry after any crash finds either both or neither."""

    sensor: str
    key: str
    digest: bytes  # SHA-256 of the request body
    response: bytes  # the JSON body answered the first time


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the events matching `filter`: newest first (`desc`), or oldest first (`asc`,
    a replay), ties broken by id; `cursor` is the (ts, id) of the previous page's last event."""

    filter: EventFilter = EventFilter()
    order: Literal["desc", "asc"] = "desc"
    limit: int = 100
    cursor: tuple[datetime, str] | None = None


class IncidentQuery(msgspec.Struct, frozen=True, kw_only=True):
    kinds: tuple[IncidentKind, ...] = ()  # any of
    status: IncidentStatus | None = None
    since: datetime | None = None  # still active at or after (last_seen >= since)
    until: datetime | None = None  # opened before
    source: str | None = None  # the key or one of the listed sources
    sensors: tuple[str, ...] = ()  # involving any of these sensors
    addresses: tuple[str, ...] = ()  # keyed by or listing any of these addresses...
    networks: tuple[str, ...] = ()  # ...or an address in one of these prefixes
    limit: int = 100


class TopItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of a summary top-N list; `label` is the organisation of an ASN."""

    key: str | int
    count: int
    label: str | None = None


class Counts(msgspec.Struct, frozen=True):
    """Events in the last minute, hour and 24 hours (up to 5 minutes ahead of `now`)."""

    last_minute: int = msgspec.field(name="1m")
    last_hour: int = msgspec.field(name="1h")
    last_day: int = msgspec.field(name="24h")


# The summary's top-N dimensions, in the order the API lists them.
TOP_DIMENSIONS = ("countries", "asns", "ips", "ports", "sensors")


class Summary(msgspec.Struct, frozen=True):
    """The dashboard summary: counts and, per dimension of TOP_DIMENSIONS, the top-N keys of
    the last 24 hours, ties broken by key. Exact, whatever the backend."""

    counts: Counts
    top: dict[str, list[TopItem]]


# The top-N dimensions of a window's summary: TOP_DIMENSIONS and what only raw events carry.
WINDOW_TOP_DIMENSIONS = (*TOP_DIMENSIONS, "usernames", "passwords", "commands", "payloads")


class WindowSummary(msgspec.Struct, frozen=True):
    """The events of a filter's window: how many, and per dimension of WINDOW_TOP_DIMENSIONS
    the top-N keys, ties broken by key. Exact, whatever the backend or path."""

    total: int
    top: dict[str, list[TopItem]]


class SensorActivity(msgspec.Struct, frozen=True):
    last_seen: datetime | None
    events_1h: int
    rejected_1h: int = 0


class Backlog(Protocol):
    """Admission: whether the next stage can take `count` more events now. A store with a
    write queue says so from its queue; a bus publisher from its stream's limits."""

    @property
    def pending_events(self) -> int: ...

    def has_room_for(self, count: int) -> bool: ...


class Receipts(Protocol):
    """Where an idempotent source finds the answer a batch already got (sources/http.py)."""

    async def find_receipt(self, sensor: str, key: str) -> Receipt | None: ...


class Store(Backlog, Receipts, Protocol):
    """What the pipeline and the web layer need from storage. Reads run off the event loop.

    A store fed from the bus (PostgreSQL) makes `append` idempotent by event id: an event
    whose id is stored already is skipped and not counted again (a redelivered message).
    DuckDB is fed only in-process, with fresh ids, and does not pay for that check."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def append(
        self,
        events: list[Event],
        dead_letters: list[DeadLetter],
        receipt: Receipt | None = None,
        incidents: list[Incident] | None = None,
    ) -> None:
        """Return once every event, dead letter, incident change and the receipt are durably
        committed, together."""

    async def recent_events(self, limit: int) -> list[Event]: ...

    async def query_events(self, query: EventQuery) -> list[Event]: ...

    def events_for_replay(self, *, window_seconds: float, payload_window_seconds: float, limit: int,
                          chunk_events: int = 20_000) -> AsyncIterator[list[Event]]: ...

    async def summary(self, now: datetime, top_n: int) -> Summary: ...

    async def window_summary(self, events: EventFilter, top_n: int, *, rollups: bool = True) -> WindowSummary:
        """The total and top-N lists of the events `events` selects (its window must be set);
        from the rollups where the filter allows unless `rollups` is false (tests compare)."""

    async def histogram(
        self, since: datetime, until: datetime, bucket_seconds: int, by_kind: bool,
        events: EventFilter | None = None,
    ) -> list[tuple[datetime, str | None, int]]:
        """(bucket start, kind or None, events) of the non-empty buckets of
        `since <= ts < until`, buckets aligned on multiples of `bucket_seconds` (a multiple
        of 60) since the Unix epoch, in order; exact. Only the events `events` selects
        (its own window is ignored)."""

    async def sensor_activity(self, now: datetime) -> dict[str, SensorActivity]: ...

    async def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    async def schema_version(self) -> int: ...

    async def query_incidents(self, query: IncidentQuery) -> list[Incident]: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def attacker_profile(self, ip: str, limit: int) -> AttackerProfile | None: ...

    async def malware_profile(self, sha256: str, limit: int) -> MalwareProfile | None: ...

    async def attacker_summaries(
        self, *, since: datetime, until: datetime, min_sensors: int, limit: int, events: EventFilter | None = None
    ) -> list[AttackerSummary]:
        """The IoC feed's rows from the events in [since, until) that `events` selects (its
        own window is ignored)."""
