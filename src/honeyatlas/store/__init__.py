"""Storage: one small `Store` protocol and the backends behind it.

`open_store(config)` is the only place that picks a backend; DuckDB (embedded, in the data
directory) is the default. The sensor registry lives beside it in SQLite
(`honeyatlas.store.registry`) because several processes (the server and the `sensor`
command) must be able to change it at once, which DuckDB's single-writer file lock forbids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import msgspec

from honeyatlas.event import Event, Kind
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.profile import AttackerProfile, AttackerSummary, MalwareProfile


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
    since: datetime | None = None
    until: datetime | None = None
    sensor: str | None = None
    src_ip: str | None = None
    kind: Kind | None = None
    country: str | None = None
    limit: int = 100
    cursor: tuple[datetime, str] | None = None  # (ts, id) of the last event of the previous page


class IncidentQuery(msgspec.Struct, frozen=True, kw_only=True):
    kind: IncidentKind | None = None
    status: IncidentStatus | None = None
    since: datetime | None = None  # still active at or after (last_seen >= since)
    until: datetime | None = None  # opened before
    source: str | None = None  # the key or one of the listed sources
    limit: int = 100


class SensorActivity(msgspec.Struct, frozen=True):
    last_seen: datetime | None
    events_1h: int
    rejected_1h: int = 0


class Store(Protocol):
    """What the pipeline and the web layer need from storage. Reads run off the event loop."""

    @property
    def pending_events(self) -> int: ...

    def has_room_for(self, count: int) -> bool: ...

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

    async def find_receipt(self, sensor: str, key: str) -> Receipt | None: ...

    async def recent_events(self, limit: int) -> list[Event]: ...

    async def query_events(self, query: EventQuery) -> list[Event]: ...

    def events_for_replay(self, *, window_seconds: float, payload_window_seconds: float, limit: int,
                          chunk_events: int = 20_000) -> AsyncIterator[list[Event]]: ...

    async def summary(self, now: datetime, top_n: int) -> dict[str, Any]: ...

    async def sensor_activity(self, now: datetime) -> dict[str, SensorActivity]: ...

    async def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    async def schema_version(self) -> int: ...

    async def query_incidents(self, query: IncidentQuery) -> list[Incident]: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def attacker_profile(self, ip: str, limit: int) -> AttackerProfile | None: ...

    async def malware_profile(self, sha256: str, limit: int) -> MalwareProfile | None: ...

    async def attacker_summaries(
        self, *, since: datetime, until: datetime, min_sensors: int, limit: int
    ) -> list[AttackerSummary]: ...
