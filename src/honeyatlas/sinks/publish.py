"""Sinks onto the bus: an ingest process's `BatchSink` and a worker's `LiveFeed`.

- `BusSink`: each normalised batch goes to the event stream, one message per partition
  share, and `deliver` returns only once JetStream stored every share (at-least-once; an
  `Idempotency-Key` makes the message ids, so a retried request is stored once).
- `BusLiveFeed`: committed events and incident changes to the bus's live subjects, for the
  web processes: best-effort, buffered, never blocking the worker, drops counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from honeyatlas.bus import Bus, BusError, BusFull, EventBatch, Publisher, publish_batch
from honeyatlas.errors import PipelineFull, StoreError
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.sinks import Delivered, Streams
from honeyatlas.store import DeadLetter, Receipt
from honeyatlas.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Events a worker's live feed holds while the bus is slow; beyond this the oldest go (counted).
LIVE_BUFFER_EVENTS = 20_000
LIVE_FLUSH_SECONDS = 0.1


class BusSink:
    """The ingest process's `BatchSink`: one message per partition share, answered only once
    JetStream stored every share. Dedupe happens in the worker (it needs the session's other
    stream), so `duplicates` is 0 here."""

    def __init__(self, bus: Publisher, *, retry_after_seconds: int) -> None:
        self._bus = bus
        self._retry_after = retry_after_seconds

    def has_room_for(self, count: int) -> bool:
        return self._bus.has_room_for(count)

    @property
    def pending_events(self) -> int:
        return self._bus.pending_events

    async def deliver(self, *, source: str, sensor: str, events: list[Event], streams: Streams,
                      dead_letters: list[DeadLetter], receipt: Callable[[Delivered], Receipt | None]) -> Delivered:
        delivered = Delivered(len(events), 0)
        made = receipt(delivered)
        batch = EventBatch(source=source, sensor=sensor, events=events, dead_letters=dead_letters, receipt=made,
                           streams=streams)
        try:
            await publish_batch(self._bus, batch, made.key if made is not None else None)
        except BusFull as exc:
            raise PipelineFull(self._retry_after) from exc
        except BusError as exc:  # not durable: the source answers "retry later"
            raise StoreError(f"not published to the bus: {exc}") from exc
        return delivered


class BusLiveFeed:
    """A worker's `LiveFeed`: buffered, published to the bus every LIVE_FLUSH_SECONDS. Never
    blocks the worker; what does not fit in the buffer is dropped and counted."""

    def __init__(self, bus: Bus, metrics: Metrics) -> None:
        self._bus = bus
        self._metrics = metrics
        self._events: collections.deque[Event] = collections.deque()
        self._incidents: dict[str, Incident] = {}
        self._task: asyncio.Task[None] | None = None

    def publish(self, events: list[Event]) -> None:
        self._events.extend(events)
        overflow = len(self._events) - LIVE_BUFFER_EVENTS
        if overflow > 0:
            for _ in range(overflow):
                self._events.popleft()
            self._metrics.inc("honeyatlas_events_dropped_total", overflow, component="live_feed", reason="bus_slow")

    def publish_incidents(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            self._incidents[incident.id] = incident  # the latest state of each is enough

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-feed")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(LIVE_FLUSH_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        events, self._events = list(self._events), collections.deque()
        incidents, self._incidents = list(self._incidents.values()), {}
        try:
            if incidents:
                await self._bus.publish_live_incidents(incidents)
            if events:
                await self._bus.publish_live(events)
        except BusError as exc:  # best-effort by design: counted, the store has everything
            self._metrics.inc("honeyatlas_events_dropped_total", len(events), component="live_feed",
                              reason="bus_error")
            log.warning("live feed: %s", exc)
