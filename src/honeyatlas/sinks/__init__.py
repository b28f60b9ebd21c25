"""Sinks: where normalised batches go. The seams between the roles are declared here.

- `BatchSink`: what the pipeline hands a normalised batch to. In one process (`--role all`)
  and in a worker it is the store sink (sinks/store.py: dedupe, correlate, commit, then the
  live feed); in an ingest process it is the bus publisher (sinks/publish.py).
- `LiveFeed`: where committed events and incident changes go for the map: the live hub in a
  process that serves WebSockets, the bus's live subjects in a worker.
- `LiveClients`: what the WebSocket route needs from the hub.

Protocols only; no implementation lives in this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.store import DeadLetter, Receipt


class Delivered(NamedTuple):
    """What a sink did with a batch: events it kept for storage, and duplicates it dropped
    (a session event another stream already brought; counted by the sink)."""

    events: int
    duplicates: int


# Dedupe stream of each event: 0 for a per-action log, 1 for a session summary, None when
# the format has no such twin (transforms/dedupe.py).
Streams = list[int | None]


class BatchSink(Protocol):
    def has_room_for(self, count: int) -> bool:
        """Whether `count` more events can be taken now (admission, before any work)."""

    @property
    def pending_events(self) -> int: ...

    async def deliver(
        self,
        *,
        source: str,
        sensor: str,
        events: list[Event],
        streams: Streams,
        dead_letters: list[DeadLetter],
        receipt: Callable[[Delivered], Receipt | None],
    ) -> Delivered:
        """Return once the batch is durable where this sink puts it (the store, or the bus),
        with the receipt `receipt(delivered)` committed together with it."""


class LiveFeed(Protocol):
    """Fire-and-forget: never blocks the caller, bounded, and counts what it drops."""

    def publish(self, events: list[Event]) -> None: ...

    def publish_incidents(self, incidents: list[Incident]) -> None: ...


class LiveClient(Protocol):
    closed: bool

    async def next_messages(self) -> list[str]: ...

    def close(self) -> None: ...


class LiveClients(Protocol):
    """The WebSocket side of the live hub: register a client (None when full) and get its
    snapshot frame, unregister it, count them. A client is registered in a view (the full
    one, or a redacted one such as "public"); frames are encoded once per view."""

    def connect(self, view: str = "full") -> tuple[LiveClient, str] | None: ...

    def disconnect(self, client: LiveClient) -> None: ...

    @property
    def client_count(self) -> int: ...
