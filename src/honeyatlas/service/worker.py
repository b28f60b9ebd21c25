"""The worker role: the stream's batches -> dedupe, correlate, PostgreSQL -> the live feed.

A worker owns the partitions `p % worker.count == worker.index`, of both subject families:
- EVENTS p (sources whose address falls in p): dedupe, the source stage of the detectors,
  the commit (idempotent by event id), then the keyed items of what it saw are published to
  the KEYED partitions of their keys, and only then is the batch acknowledged;
- KEYED p (payload hashes and campaign fingerprints that fall in p): the keyed stage of the
  detectors; incident changes saved and sent live.
A worker killed mid-batch loses nothing: unacknowledged batches come again (after
`bus.ack_wait_seconds`) to whoever consumes the partition next, normally the same worker
restarted, which first rebuilds both stages from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from honeyatlas.bus import EVENTS, KEYED, BusError, Delivery, EventBatch, partition_of
from honeyatlas.config import Config
from honeyatlas.errors import HoneyatlasError
from honeyatlas.event import Event
from honeyatlas.service import registry_for
from honeyatlas.service.correlation import CorrelationRuntime
from honeyatlas.service.parts import build_deduplicator
from honeyatlas.service.roles import RoleBase
from honeyatlas.sinks.publish import BusLiveFeed
from honeyatlas.sinks.store import StoreSink
from honeyatlas.store.open import open_store
from honeyatlas.tasks import cancel_and_wait
from honeyatlas.transforms.correlate import Hit
from honeyatlas.transforms.correlate.stages import KeyedItem, WorkerCorrelation
from honeyatlas.web.api import WebContext
from honeyatlas.web.app import create_ops_app

log = logging.getLogger(__name__)


class WorkerRole(RoleBase):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "worker")
        worker, total = config.worker, config.bus.partitions
        self.partitions = [p for p in range(total) if p % worker.count == worker.index]
        self.registry = registry_for(config)
        self.store = open_store(config, self.metrics, shard=worker.index)
        self.live = BusLiveFeed(self.bus, self.metrics)
        self.correlation: WorkerCorrelation | None = None
        if config.correlation.enabled:
            self.correlation = WorkerCorrelation(
                config.correlation, partition=lambda text: partition_of(text, total),
                sources=set(self.partitions), keys=set(self.partitions), partitions=total)
            source = self.correlation.source  # replayed events' keyed items dropped at their bound
            self.metrics.gauge("honeyatlas_correlation_evictions_total",
                               lambda: [((("detector", "replayed_keyed_items"),), source.replayed_evicted)])
        self.sink = StoreSink(
            store=self.store, live=self.live, deduplicator=build_deduplicator(config, self.metrics),
            metrics=self.metrics, correlator=self.correlation.source if self.correlation else None,
            incident_save_interval_seconds=config.correlation.save_interval_seconds,
        )
        self.runtime = (CorrelationRuntime(self.correlation, settings=config.correlation, store=self.store,
                                           sink=self.sink) if self.correlation is not None else None)
        self._consumers: list[asyncio.Task[None]] = []
        self.app = create_ops_app(
            WebContext(registry=self.registry, store=self.store, backlog=self.store, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=[], role="worker"),
            self.access())

    def listener_addresses(self) -> list[str]:
        return [f"partitions {', '.join(map(str, self.partitions))} of {self.config.bus.partitions}"]

    async def start(self) -> None:
        self.registry.open()
        await self.store.start()
        await self.bus.start()
        if self.runtime is not None:
            await self.runtime.start()
        await self.live.start()
        for p in self.partitions:
            self._consumers.append(asyncio.create_task(self._consume(EVENTS, p, self._store_events),
                                                       name=f"events p{p}"))
            if self.correlation is not None:
                self._consumers.append(asyncio.create_task(self._consume(KEYED, p, self._correlate_keyed),
                                                           name=f"keyed p{p}"))

    async def _consume(self, family: str, partition: int,
                       handle: Callable[[list[Delivery]], Awaitable[list[BaseException | None]]]) -> None:
        fetch_max = self.config.bus.fetch_batch_messages
        await self._let_predecessor_batches_come_first(family, partition)
        while True:
            try:
                deliveries = await self.bus.fetch(partition, fetch_max, timeout=1.0, family=family)
            except BusError as exc:
                log.warning("%s p%d: fetch failed: %s", family, partition, exc)
                await asyncio.sleep(1.0)
                continue
            if not deliveries:
                continue
            try:
                outcomes = await handle(deliveries)
            except HoneyatlasError as exc:  # nothing acknowledged: all of them come again
                outcomes = [exc] * len(deliveries)
            for delivery, outcome in zip(deliveries, outcomes, strict=True):
                if outcome is None:
                    await delivery.ack()
                else:
                    log.warning("%s p%d: batch not done, delivered again later: %s", family, partition, outcome)
                    self.metrics.inc("honeyatlas_bus_batches_retried_total", family=family)
                    await delivery.nak(delay=1.0)

    async def _let_predecessor_batches_come_first(self, family: str, partition: int) -> None:
        """A worker that died left batches delivered and unacknowledged; JetStream hands them
        out again once their ack wait passes, but newer batches meanwhile. Taking those first
        would feed the detectors out of event order (a late hit can fall outside a window the
        newer ones moved on), so a worker that finds such batches waits for them."""
        try:
            waiting = await self.bus.unacknowledged(partition, family)
        except BusError as exc:
            log.warning("%s p%d: %s", family, partition, exc)
            return
        if waiting:
            log.info("%s p%d: %d batches of a previous worker unacknowledged; taking them first (%.0f s)",
                     family, partition, waiting, self.config.bus.ack_wait_seconds)
            await asyncio.sleep(self.config.bus.ack_wait_seconds)

    async def _store_events(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        # Started in order, so dedupe and the detectors see the batches in stream order; the
        # commits then share the store writer's transactions.
        results = await asyncio.gather(*(self._store_one(d.batch) for d in deliveries), return_exceptions=True)
        if self.correlation is not None:
            await self._pass_on(self.correlation.source.take())
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _store_one(self, batch: EventBatch) -> None:
        await self.sink.deliver(source=batch.source, sensor=batch.sensor, events=batch.events,
                                streams=batch.streams or [None] * len(batch.events),
                                dead_letters=batch.dead_letters, receipt=lambda _: batch.receipt)

    async def _pass_on(self, items: list[KeyedItem]) -> None:
        """The keyed items of the batches just stored, to the partitions of their keys. A
        failure raises: the batches are not acknowledged and come again (the store skips
        their events; the keyed detectors count distinct sources and sensors, so a repeat
        changes at most an event count)."""
        by_partition: dict[int, tuple[list[Event], list[Hit | None]]] = {}
        for partition, event, hit in items:
            events, hits = by_partition.setdefault(partition, ([], []))
            events.append(msgspec.structs.replace(event, raw=None) if event.raw is not None else event)
            hits.append(hit)
        await asyncio.gather(*(
            self.bus.publish(p, EventBatch(source="keyed", sensor="", events=events, dead_letters=[], hits=hits),
                             family=KEYED)
            for p, (events, hits) in by_partition.items()))

    async def _correlate_keyed(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        assert self.correlation is not None
        keyed = self.correlation.keyed.correlator
        transitions = keyed.transitions
        incidents = keyed.observe_keyed(
            (event, hit) for d in deliveries for event, hit in zip(d.batch.events, d.batch.hits, strict=True))
        await self.sink.deliver_incidents(incidents, transitions != keyed.transitions)
        return [None] * len(deliveries)

    async def stop(self) -> None:
        for task in self._consumers:
            await cancel_and_wait(task)
        self._consumers = []
        await self.live.stop()
        if self.runtime is not None:
            await self.runtime.stop()
        await self.bus.stop()
        await self.store.stop()
        self.registry.close()
