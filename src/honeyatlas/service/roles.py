"""The cluster roles: `ingest`, `worker` and `web`, over NATS JetStream and PostgreSQL.

Each is a composition of the same parts as `--role all` (service/__init__.py) with other
collaborators, never a fork of them:

- ingest: sources + pipeline (adapters, GeoIP) -> `BusSink` (publish to JetStream, answer
  after its acknowledgement). Pulling sources run only in the holder of a bus lease.
- worker: bus consumer -> `StoreSink` (dedupe, correlate, PostgreSQL) -> `BusLiveFeed`. It
  owns the partitions `p % worker.count == worker.index` and acknowledges a batch only after
  its commit; the store skips event ids it has already (redelivery after a crash).
- web: map, queries and WebSocket from PostgreSQL, its hub fed from the bus's live subjects.

Every role serves HTTP on `server.port`: ingest its route, web the map, the worker only
health and metrics.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from collections.abc import Callable

from litestar import Litestar

from honeyatlas.bus import BusError, BusFull, Delivery, EventBatch, partition_of, publish_batch
from honeyatlas.bus.nats import NatsBus
from honeyatlas.config import Config
from honeyatlas.errors import PipelineFull, StoreError
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Pipeline
from honeyatlas.service import live_hub, registry_for, seed_hub
from honeyatlas.service.correlation import CorrelationRuntime
from honeyatlas.service.http import listen, serve
from honeyatlas.service.parts import (
    build_adapters,
    build_correlator,
    build_deduplicator,
    build_geoip,
    geoip_status,
    sensor_timezone,
)
from honeyatlas.service.sources import Sources
from honeyatlas.sinks import Delivered, Streams
from honeyatlas.sinks.store import StoreSink
from honeyatlas.sources.demo import DemoHoneynet
from honeyatlas.sources.idempotency import IdempotencyStore
from honeyatlas.store import DeadLetter, Receipt
from honeyatlas.store.open import open_store
from honeyatlas.tasks import cancel_and_wait
from honeyatlas.transforms.geolocate import Geolocator
from honeyatlas.web.api import WebContext
from honeyatlas.web.app import IngestContext, create_ingest_app, create_ops_app, create_web_app

log = logging.getLogger(__name__)

# Events a worker's live feed holds while the bus is slow; beyond this the oldest go (counted).
LIVE_BUFFER_EVENTS = 20_000
LIVE_FLUSH_SECONDS = 0.1


def _holder(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class BusSink:
    """The ingest process's `BatchSink`: one message per partition share, answered only once
    JetStream stored every share. Dedupe happens in the worker (it needs the session's other
    stream), so `duplicates` is 0 here."""

    def __init__(self, bus: NatsBus, *, retry_after_seconds: int) -> None:
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

    def __init__(self, bus: NatsBus, metrics: Metrics) -> None:
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


class _Role:
    """What every role shares: config, metrics, the bus, HTTP serving."""

    app: Litestar

    def __init__(self, config: Config, role: str) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bus = NatsBus(config.bus, metrics=self.metrics, name=_holder(role))

    def listener_addresses(self) -> list[str]:
        return []

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        server = self.config.server
        await serve(self.app, listen(server.host, server.port, reuse_port=server.reuse_port),
                    start=self.start, stop=self.stop, on_ready=on_ready)


class IngestRole(_Role):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "ingest")
        self.geoip = build_geoip(config, self.metrics)
        self.registry = registry_for(config)
        self.store = open_store(config, self.metrics)  # read here: receipts only
        self.idempotency = IdempotencyStore(
            config.data_dir / "idempotency.sqlite3", ttl_seconds=config.ingest.idempotency_ttl_seconds,
            max_keys_per_sensor=config.ingest.idempotency_max_keys_per_sensor, metrics=self.metrics,
        )
        self.sink = BusSink(self.bus, retry_after_seconds=config.ingest.retry_after_seconds)
        self.pipeline = Pipeline(
            adapters=build_adapters(config), geolocator=Geolocator(self.geoip, cache_size=config.geoip.cache_size),
            sink=self.sink, metrics=self.metrics, sensor_timezone=sensor_timezone(config),
            retry_after_seconds=config.ingest.retry_after_seconds,
        )
        self.sources = Sources(config, pipeline=self.pipeline, registry=self.registry, receipts=self.store,
                               metrics=self.metrics)
        self.demo = (
            DemoHoneynet(pipeline=self.pipeline, registry=self.registry,
                         events_per_second=config.demo.events_per_second, seed=config.demo.seed)
            if config.demo.enabled else None
        )
        self._holder = _holder("ingest")
        self._lease_task: asyncio.Task[None] | None = None
        self.app = create_ingest_app(
            WebContext(registry=self.registry, store=self.store, backlog=self.sink, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=self.pipeline.formats(),
                       geoip_status=lambda: geoip_status(self.geoip), role="ingest"),
            IngestContext(pipeline=self.pipeline, registry=self.registry, receipts=self.store, metrics=self.metrics,
                          settings=config.ingest, idempotency=self.idempotency),
        )

    def listener_addresses(self) -> list[str]:
        return self.sources.addresses()

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry.open()
        self.idempotency.open()
        await self.store.start()
        self.geoip.open()
        await self.bus.start()
        await self.sources.start(pulling=False)
        if self.sources.has_pulling:
            self._lease_task = asyncio.create_task(self._hold_pulling(), name="pulling-lease")
        if self.demo is not None:
            await self.demo.start()

    async def _hold_pulling(self) -> None:
        """Run the pulling sources while this process holds the lease; try to take it otherwise."""
        every = self.config.bus.lease_ttl_seconds / 3
        holding = False
        try:
            while True:
                try:
                    if holding:
                        holding = await self.bus.renew("pulling-sources", self._holder)
                        if not holding:
                            log.warning("lost the pulling-sources lease; stopping the subscriber and followed files")
                            await self.sources.stop_pulling()
                    elif await self.bus.acquire("pulling-sources", self._holder):
                        holding = True
                        log.info("holding the pulling-sources lease: starting the subscriber and followed files")
                        await self.sources.start_pulling()
                except BusError as exc:
                    log.warning("pulling-sources lease: %s", exc)
                await asyncio.sleep(every)
        finally:
            if holding:
                await self.sources.stop_pulling()
                try:
                    await self.bus.release("pulling-sources", self._holder)
                except BusError as exc:
                    log.warning("releasing the pulling-sources lease: %s", exc)

    async def stop(self) -> None:
        await cancel_and_wait(self._lease_task)
        await self.sources.stop()
        if self.demo is not None:
            await self.demo.stop()
        await self.bus.stop()
        await self.store.stop()
        self.geoip.close()
        self.idempotency.close()
        self.registry.close()


class WorkerRole(_Role):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "worker")
        worker = config.worker
        self.partitions = [p for p in range(config.bus.partitions) if p % worker.count == worker.index]
        self.registry = registry_for(config)
        self.store = open_store(config, self.metrics, shard=worker.index)
        self.live = BusLiveFeed(self.bus, self.metrics)
        correlator = build_correlator(config, self.metrics)
        self.sink = StoreSink(
            store=self.store, live=self.live, deduplicator=build_deduplicator(config, self.metrics),
            metrics=self.metrics, correlator=correlator,
            incident_save_interval_seconds=config.correlation.save_interval_seconds,
        )
        mine = set(self.partitions)
        total = config.bus.partitions
        self.correlation = (
            CorrelationRuntime(correlator, settings=config.correlation, store=self.store, sink=self.sink,
                               owns=lambda e: partition_of(e.src_ip, total) in mine,
                               owns_incident=lambda i: partition_of(i.sources[0] if i.sources else i.key, total) in mine)
            if correlator is not None else None
        )
        self._consumers: list[asyncio.Task[None]] = []
        self.app = create_ops_app(
            WebContext(registry=self.registry, store=self.store, backlog=self.store, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=[], role="worker"))

    def listener_addresses(self) -> list[str]:
        return [f"partitions {', '.join(map(str, self.partitions))} of {self.config.bus.partitions}"]

    async def start(self) -> None:
        self.registry.open()
        await self.store.start()
        await self.bus.start()
        if self.correlation is not None:
            await self.correlation.start()
        await self.live.start()
        self._consumers = [asyncio.create_task(self._consume(p), name=f"consume p{p}") for p in self.partitions]

    async def _consume(self, partition: int) -> None:
        fetch_max = self.config.bus.fetch_batch_messages
        while True:
            try:
                deliveries = await self.bus.fetch(partition, fetch_max, timeout=1.0)
            except BusError as exc:
                log.warning("partition %d: fetch failed: %s", partition, exc)
                await asyncio.sleep(1.0)
                continue
            if not deliveries:
                continue
            # Started in order, so dedupe and correlation see the batches in stream order;
            # their commits then share the store writer's transactions.
            results = await asyncio.gather(*(self._store_one(d) for d in deliveries), return_exceptions=True)
            for delivery, result in zip(deliveries, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("partition %d: batch not stored, delivered again later: %s", partition, result)
                    self.metrics.inc("honeyatlas_bus_batches_retried_total", partition=str(partition))
                    await delivery.nak(delay=1.0)
                else:
                    await delivery.ack()

    async def _store_one(self, delivery: Delivery) -> None:
        batch = delivery.batch
        await self.sink.deliver(source=batch.source, sensor=batch.sensor, events=batch.events,
                                streams=batch.streams or [None] * len(batch.events),
                                dead_letters=batch.dead_letters, receipt=lambda _: batch.receipt)

    async def stop(self) -> None:
        for task in self._consumers:
            await cancel_and_wait(task)
        self._consumers = []
        await self.live.stop()
        if self.correlation is not None:
            await self.correlation.stop()
        await self.bus.stop()
        await self.store.stop()
        self.registry.close()


class WebRole(_Role):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "web")
        self.registry = registry_for(config)
        self.store = open_store(config, self.metrics)  # read only here
        self.hub = live_hub(config, self.metrics)
        self.app = create_web_app(
            WebContext(registry=self.registry, store=self.store, backlog=self.store, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=sorted([*build_adapters(config), "auto"]),
                       live=self.hub, role="web", sharing_identity=config.server.instance_name))

    async def start(self) -> None:
        self.registry.open()
        await self.store.start()
        await self.bus.start()
        await seed_hub(self.hub, self.store, self.config)
        await self.hub.start()
        await self.bus.subscribe_live(self.hub.publish, self.hub.publish_incidents)

    async def stop(self) -> None:
        await self.bus.stop()
        await self.hub.stop()
        await self.store.stop()
        self.registry.close()


def build_role(config: Config) -> IngestRole | WorkerRole | WebRole:
    roles = {"ingest": IngestRole, "worker": WorkerRole, "web": WebRole}
    return roles[config.server.role](config)
