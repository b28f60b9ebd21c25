"""The bus between the roles: its small interface, its messages and an in-process double.

Ingest processes publish each normalised batch (`EventBatch`) to a partition of the event
stream; worker processes fetch the batches of their partitions and acknowledge each one
once it is stored; web processes subscribe to the live feed. Two implementations:

- `honeyatlas.bus.nats.NatsBus`: NATS JetStream. Event batches are at-least-once: `publish`
  returns only after JetStream stored the message durably, and a batch taken but not
  acknowledged within `bus.ack_wait_seconds` is delivered again. The live feed is
  best-effort (core NATS): what a slow or absent subscriber misses is counted, not kept.
- `LocalBus` (below): the same contract inside one process, for tests and as a double. It
  keeps encoded messages, so a test also exercises the codec.

What lives here: the protocols the roles use (`Publisher`, `Consumer`, `LiveFeed`, `Leases`,
`Bus`), `EventBatch` and its msgpack codec, partitioning, `publish_batch`. What must not:
anything about a role (the ingest route turns `BusFull` into 429 and `BusError` into 503;
the worker decides when to ack), and anything NATS-specific.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from honeyatlas.config import BusConfig
from honeyatlas.errors import BusError, BusFull
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.store import Backlog, DeadLetter, Receipt
from honeyatlas.transforms.correlate import Hit

__all__ = [
    "Bus",
    "BusError",
    "BusFull",
    "Consumer",
    "Delivery",
    "EventBatch",
    "Leases",
    "LiveFeed",
    "LocalBus",
    "Publisher",
    "partition_of",
    "publish_batch",
    "split_by_partition",
]


class EventBatch(msgspec.Struct, frozen=True):
    """One sensor batch, or its share for one partition, as ingest publishes it.

    The receipt (idempotent requests) and the dead letters travel with one partition's share
    only (see `split_by_partition`), so the worker that stores them stores them once."""

    source: str
    sensor: str
    events: list[Event]
    dead_letters: list[DeadLetter]
    receipt: Receipt | None = None
    # Dedupe stream of each event (sinks.Streams: 0 per-action log, 1 session summary,
    # None without a twin); empty means None for every event.
    streams: list[int | None] = []
    # Family KEYED only: the campaign fingerprint each event completed, or None for an event
    # passed on for its payload hash (transforms/correlate: the keyed stage).
    hits: list[Hit | None] = []


# Subject families of the event stream: EVENTS carries the ingested batches, partitioned by
# source address; KEYED carries what a worker's source stage passes to the keyed detectors,
# partitioned by the shared key (payload hash, campaign fingerprint).
EVENTS = "events"
KEYED = "keyed"
FAMILIES = (EVENTS, KEYED)


class BatchEncoder:
    """msgpack, one reusable encoder per publisher. Datetimes keep their instant to the
    microsecond; an aware datetime comes back in UTC (events are UTC already), a naive one
    stays naive."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, batch: EventBatch) -> bytes:
        return self._encoder.encode(batch)


class BatchDecoder:
    def __init__(self) -> None:
        self._decoder = msgspec.msgpack.Decoder(EventBatch)

    def decode(self, data: bytes) -> EventBatch:
        return self._decoder.decode(data)


def partition_of(src_ip: str | None, partitions: int) -> int:
    """The partition of a source address: the same in every process and Python run (CRC-32,
    not `hash()`, which is salted per process). Events without an address go to 0."""
    if not src_ip or partitions <= 1:
        return 0
    return zlib.crc32(src_ip.encode("utf-8", "surrogatepass")) % partitions


def split_by_partition(batch: EventBatch, partitions: int) -> dict[int, EventBatch]:
    """The batch's events grouped by the partition of their source address, in their order.

    Dead letters and the receipt go with the partition of the first event (0 when there is
    none), so a batch of only dead letters still makes one message. `streams` is split with
    the events (and left empty in a share where no event has one)."""
    first = partition_of(batch.events[0].src_ip, partitions) if batch.events else 0
    groups: dict[int, list[Event]] = {first: []}
    streams: dict[int, list[int | None]] = {first: []}
    given = batch.streams or [None] * len(batch.events)
    for event, stream in zip(batch.events, given, strict=True):
        partition = partition_of(event.src_ip, partitions)
        groups.setdefault(partition, []).append(event)
        streams.setdefault(partition, []).append(stream)
    return {
        partition: EventBatch(
            source=batch.source,
            sensor=batch.sensor,
            events=events,
            dead_letters=batch.dead_letters if partition == first else [],
            receipt=batch.receipt if partition == first else None,
            streams=streams[partition] if any(s is not None for s in streams[partition]) else [],
        )
        for partition, events in groups.items()
    }


def message_id(sensor: str, key: str, partition: int) -> str:
    """The JetStream message id of one partition's share of an idempotent batch: a retry of
    the same request within the duplicate window publishes nothing twice, even when only
    some partitions were stored the first time."""
    return f"{sensor}:{key}:{partition}"


class Publisher(Backlog, Protocol):
    """The ingest side of the event stream. `has_room_for` / `pending_events` (Backlog) let
    a source refuse early; `publish` is the authority."""

    partitions: int

    async def publish(self, partition: int, batch: EventBatch, msg_id: str | None = None,
                      family: str = EVENTS) -> None:
        """Return once the stream stored the batch durably. A duplicate `msg_id` within the
        duplicate window is a success. Raises `BusFull` when the stream is at its limits
        (it never drops older batches to make room) and `BusError` on timeout or disconnect
        (the message may still have been stored: a retry with the same id is safe)."""


async def publish_batch(publisher: Publisher, batch: EventBatch, key: str | None = None) -> None:
    """Publish every partition's share of `batch` concurrently; return when all are stored.

    With an idempotency `key` each share carries `message_id(sensor, key, partition)`. Raises
    the first failure once every publish has finished (so none is left running)."""
    shares = split_by_partition(batch, publisher.partitions)
    results = await asyncio.gather(
        *(
            publisher.publish(p, share, message_id(batch.sensor, key, p) if key is not None else None)
            for p, share in shares.items()
        ),
        return_exceptions=True,
    )
    # BusFull first: "retry later" is the truer answer when one share was refused for room.
    errors = sorted((r for r in results if isinstance(r, BaseException)), key=lambda e: not isinstance(e, BusFull))
    if errors:
        raise errors[0]


class Delivery(Protocol):
    """One fetched batch. Acknowledge it once it is stored; until then (and after
    `ack_wait`) it may be delivered again, to this worker or another. `ack`, `nak` and
    `in_progress` do not raise when the bus is unreachable: the batch then comes again."""

    @property
    def batch(self) -> EventBatch: ...

    @property
    def partition(self) -> int: ...

    @property
    def delivered_count(self) -> int:
        """1 the first time, more on redelivery."""

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None:
        """Give it back now (or after `delay` seconds) for redelivery."""

    async def in_progress(self) -> None:
        """Still working on it: restart its ack_wait."""


class Consumer(Protocol):
    """The worker side: one durable consumer per partition, explicit acknowledgement."""

    partitions: int

    async def unacknowledged(self, partition: int, family: str = EVENTS) -> int:
        """Batches of the partition delivered and not acknowledged yet (by anyone, e.g. a
        worker that died): they come again once their ack wait has passed."""

    async def fetch(self, partition: int, max_messages: int, timeout: float,
                    family: str = EVENTS) -> list[Delivery]:
        """Up to `max_messages` batches of `partition`, oldest first; waits up to `timeout`
        seconds for the first one, returns [] when none came."""


EventsHandler = Callable[[list[Event]], None]
IncidentsHandler = Callable[[list[Incident]], None]


class LiveFeed(Protocol):
    """Best-effort fan-out of new events and incidents from workers to web processes: what
    a slow, disconnected or absent subscriber misses is counted and gone (the store keeps
    everything; the map's snapshot comes from there)."""

    async def publish_live(self, events: list[Event]) -> None: ...

    async def publish_live_incidents(self, incidents: list[Incident]) -> None: ...

    async def subscribe_live(self, on_events: EventsHandler, on_incidents: IncidentsHandler) -> None:
        """Call the handlers (on the event loop, in order) for everything published from now
        on until `stop()`. Handlers must be quick: they run on the subscriber's dispatch."""


class Leases(Protocol):
    """One owner at a time for pulling sources (the hpfeeds subscriber, a followed file).

    A lease lasts `bus.lease_ttl_seconds` after its last acquire or renew; the holder renews
    it well within that (every third of it) and stops its source when `renew` says False."""

    async def acquire(self, name: str, holder: str) -> bool:
        """True when `holder` now holds `name` (free, expired, or held by it already)."""

    async def renew(self, name: str, holder: str) -> bool:
        """True when `holder` still held `name` and its TTL restarted; False when it lost it."""

    async def release(self, name: str, holder: str) -> None:
        """Free `name` now if `holder` holds it, so another process need not wait the TTL."""


class Bus(Publisher, Consumer, LiveFeed, Leases, Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# --- The in-process implementation ---------------------------------------------------------


@dataclass(eq=False)
class _Stored:
    data: bytes
    events: int
    delivered: int = 0
    invisible_until: float = 0.0  # monotonic; in flight until then


@dataclass(eq=False)
class _LocalDelivery:
    batch: EventBatch
    partition: int
    delivered_count: int
    _bus: LocalBus
    _stored: _Stored = field(repr=False)
    _queue: deque[_Stored] = field(repr=False)

    async def ack(self) -> None:
        self._bus._ack(self.partition, self._stored, self._queue)

    async def nak(self, delay: float | None = None) -> None:
        self._stored.invisible_until = time.monotonic() + (delay or 0.0)
        self._bus._wake()

    async def in_progress(self) -> None:
        self._stored.invisible_until = time.monotonic() + self._bus._ack_wait


class LocalBus:
    """The bus contract in one process: bounded (`stream_max_messages` per bus, BusFull
    beyond), deduplicating message ids within the duplicate window, redelivering batches not
    acknowledged within `ack_wait_seconds`, leases with a TTL. The live feed calls the
    subscribers' handlers directly. Nothing outlives the object: a double, not a store."""

    def __init__(self, config: BusConfig | None = None, *, metrics: Metrics | None = None) -> None:
        config = config or BusConfig()
        self.partitions = config.partitions
        self._max_messages = config.stream_max_messages
        self._duplicate_window = config.duplicate_window_seconds
        self._ack_wait = config.ack_wait_seconds
        self._lease_ttl = config.lease_ttl_seconds
        self._metrics = metrics or Metrics()
        self._encoder = BatchEncoder()
        self._decoder = BatchDecoder()
        self._queues: dict[tuple[str, int], deque[_Stored]] = {
            (family, p): deque() for family in FAMILIES for p in range(self.partitions)}
        self._seen_ids: dict[str, float] = {}  # msg id -> monotonic time published, oldest first
        self._changed = asyncio.Event()
        self._live: list[tuple[EventsHandler, IncidentsHandler]] = []
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, monotonic expiry)

    async def start(self) -> None:
        """Nothing to open: the whole bus lives in this object."""

    async def stop(self) -> None:
        self._live.clear()

    # Publisher
    @property
    def pending_events(self) -> int:
        return sum(s.events for q in self._queues.values() for s in q)

    def has_room_for(self, count: int) -> bool:
        return sum(len(q) for q in self._queues.values()) < self._max_messages

    async def publish(self, partition: int, batch: EventBatch, msg_id: str | None = None,
                      family: str = EVENTS) -> None:
        if not 0 <= partition < self.partitions:
            raise BusError(f"partition {partition} outside 0..{self.partitions - 1}")
        now = time.monotonic()
        while self._seen_ids and next(iter(self._seen_ids.values())) < now - self._duplicate_window:
            del self._seen_ids[next(iter(self._seen_ids))]
        if msg_id is not None and msg_id in self._seen_ids:
            self._metrics.inc("honeyatlas_bus_publish_duplicates_total")
            return
        if sum(len(q) for q in self._queues.values()) >= self._max_messages:
            self._metrics.inc("honeyatlas_bus_publish_refused_total", reason="stream_full")
            raise BusFull("local", f"{self._max_messages} messages")
        self._queues[family, partition].append(_Stored(self._encoder.encode(batch), len(batch.events)))
        if msg_id is not None:
            self._seen_ids[msg_id] = now
        self._metrics.inc("honeyatlas_bus_messages_published_total")
        self._metrics.inc("honeyatlas_bus_events_published_total", len(batch.events))
        self._wake()

    # Consumer
    async def unacknowledged(self, partition: int, family: str = EVENTS) -> int:
        now = time.monotonic()
        return sum(1 for s in self._queues[family, partition] if s.delivered and s.invisible_until > now)

    async def fetch(self, partition: int, max_messages: int, timeout: float,
                    family: str = EVENTS) -> list[Delivery]:
        queue = self._queues[family, partition]
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            ready = [s for s in queue if s.invisible_until <= now][:max_messages]
            if ready:
                break
            if now >= deadline:
                return []
            until = min([deadline, *(s.invisible_until for s in queue)])
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), until - now)
        deliveries: list[Delivery] = []
        for stored in ready:
            stored.delivered += 1
            stored.invisible_until = now + self._ack_wait
            deliveries.append(
                _LocalDelivery(self._decoder.decode(stored.data), partition, stored.delivered, self, stored, queue)
            )
            self._metrics.inc("honeyatlas_bus_messages_delivered_total", partition=str(partition))
            if stored.delivered > 1:
                self._metrics.inc("honeyatlas_bus_messages_redelivered_total", partition=str(partition))
        return deliveries

    def _ack(self, partition: int, stored: _Stored, queue: deque[_Stored]) -> None:
        if stored in queue:
            queue.remove(stored)
            self._metrics.inc("honeyatlas_bus_messages_acked_total", partition=str(partition))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

    # LiveFeed
    async def publish_live(self, events: list[Event]) -> None:
        for on_events, _ in self._live:
            on_events(list(events))

    async def publish_live_incidents(self, incidents: list[Incident]) -> None:
        for _, on_incidents in self._live:
            on_incidents(list(incidents))

    async def subscribe_live(self, on_events: EventsHandler, on_incidents: IncidentsHandler) -> None:
        self._live.append((on_events, on_incidents))

    # Leases
    async def acquire(self, name: str, holder: str) -> bool:
        now = time.monotonic()
        current = self._leases.get(name)
        if current is None or current[1] <= now or current[0] == holder:
            self._leases[name] = (holder, now + self._lease_ttl)
            return True
        return False

    async def renew(self, name: str, holder: str) -> bool:
        now = time.monotonic()
        current = self._leases.get(name)
        if current is None or current[0] != holder or current[1] <= now:
            return False
        self._leases[name] = (holder, now + self._lease_ttl)
        return True

    async def release(self, name: str, holder: str) -> None:
        current = self._leases.get(name)
        if current is not None and current[0] == holder:
            del self._leases[name]
