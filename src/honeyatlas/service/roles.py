"""The cluster roles: `ingest`, `worker` and `web`, over NATS JetStream and PostgreSQL.

Each is a composition of the same parts as `--role all` (service/__init__.py) with other
collaborators, never a fork of them:

- ingest: sources + pipeline (adapters, GeoIP) -> `BusSink` (publish to JetStream, answer
  after its acknowledgement). Pulling sources run only in the holder of a bus lease.
- worker (service/worker.py): bus consumer -> `StoreSink` (dedupe, correlate, PostgreSQL) -> `BusLiveFeed`. It
  owns the partitions `p % worker.count == worker.index` and acknowledges a batch only after
  its commit; the store skips event ids it has already (redelivery after a crash).
- web: map, queries and WebSocket from PostgreSQL, its hub fed from the bus's live subjects.

Every role serves HTTP on `server.port`: ingest its route, web the map, the worker only
health and metrics.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta

from litestar import Litestar

from honeyatlas.bus import BusError
from honeyatlas.bus.nats import NatsBus
from honeyatlas.config import Config
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Pipeline
from honeyatlas.service import access_policy, live_hub, registry_for, seed_hub
from honeyatlas.service.http import serve
from honeyatlas.service.parts import (
    build_adapters,
    build_geoip,
    build_public_view,
    fault_report,
    geoip_fault,
    geoip_status,
    sensor_timezone,
)
from honeyatlas.service.sources import Sources
from honeyatlas.sinks.publish import BusSink
from honeyatlas.sources.demo import DemoHoneynet
from honeyatlas.sources.idempotency import IdempotencyStore
from honeyatlas.store import Receipt
from honeyatlas.store.accounts import login_hint
from honeyatlas.store.disk import DiskFloor
from honeyatlas.store.open import open_accounts, open_store
from honeyatlas.tasks import cancel_and_wait
from honeyatlas.transforms.correlate.benign import BenignNetworks
from honeyatlas.transforms.geolocate import Geolocator
from honeyatlas.transforms.redact import PublicView
from honeyatlas.web.access import AccessPolicy
from honeyatlas.web.api import WebContext
from honeyatlas.web.app import IngestContext, create_ingest_app, create_web_app

log = logging.getLogger(__name__)

def _holder(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class IdsAreTheReceipt:
    """`Receipts` of an ingest process: it looks none up. A keyed batch sent again gets the
    event ids it got the first time (`Pipeline.ingest(identity=...)`), so the workers' store
    keeps it once however late the retry and through whichever ingest process; the bus
    drops the repeat earlier within its duplicate window. Looking the receipt up in
    PostgreSQL on every keyed request cost a quarter of the ingest process's CPU
    (docs/performance.md, Roles). A retry that reaches the process that answered it (or one
    sharing its data directory) is still answered from the idempotency cache."""

    async def find_receipt(self, sensor: str, key: str) -> Receipt | None:
        return None


class RoleBase(abc.ABC):
    """What every role shares: config, metrics, the bus, HTTP serving. Each role says how
    it starts and stops."""

    app: Litestar

    def __init__(self, config: Config, role: str) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bus = NatsBus(config.bus, metrics=self.metrics, name=_holder(role))
        self.accounts = open_accounts(config)  # who may read this process's routes

    def access(self, public: PublicView | None = None) -> AccessPolicy:
        return access_policy(self.config, self.accounts, self.metrics, public)

    def listener_addresses(self) -> list[str]:
        return []

    def login_hint(self, state_options: str = "") -> str | None:
        return login_hint(self.accounts, state_options)

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        async def start() -> None:
            self.accounts.open()
            await self.start()

        async def stop() -> None:
            try:
                await self.stop()
            finally:
                self.accounts.close()

        await serve(self.app, self.config.server, live=self.config.live, metrics=self.metrics, start=start,
                    stop=stop, on_ready=on_ready,
                    drain_seconds=self.config.ingest.shutdown_drain_seconds)


class IngestRole(RoleBase):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "ingest")
        self.geoip = build_geoip(config, self.metrics)
        self.registry = registry_for(config)
        receipts = IdsAreTheReceipt()
        self.idempotency = IdempotencyStore(
            config.data_dir / "idempotency.sqlite3", ttl_seconds=config.ingest.idempotency_ttl_seconds,
            max_keys_per_sensor=config.ingest.idempotency_max_keys_per_sensor, metrics=self.metrics,
        )
        self.sink = BusSink(self.bus, retry_after_seconds=config.ingest.retry_after_seconds)
        self.disk = DiskFloor(config.data_dir, min_free_mib=config.storage.min_free_disk_mib, metrics=self.metrics)
        self.pipeline = Pipeline(
            adapters=build_adapters(config), geolocator=Geolocator(self.geoip, cache_size=config.geoip.cache_size),
            sink=self.sink, metrics=self.metrics, sensor_timezone=sensor_timezone(config),
            retry_after_seconds=config.ingest.retry_after_seconds,
            max_future_skew=timedelta(seconds=config.ingest.max_future_skew_seconds),
            guards=[self.disk],
        )
        self.sources = Sources(config, pipeline=self.pipeline, registry=self.registry, receipts=receipts,
                               metrics=self.metrics)
        self.demo = (
            DemoHoneynet(pipeline=self.pipeline, registry=self.registry,
                         events_per_second=config.demo.events_per_second, seed=config.demo.seed)
            if config.demo.enabled else None
        )
        self._holder = _holder("ingest")
        self._lease_task: asyncio.Task[None] | None = None
        self.app = create_ingest_app(
            WebContext(registry=self.registry, store=None, backlog=self.sink, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=self.pipeline.formats(),
                       geoip_status=lambda: geoip_status(self.geoip), role="ingest",
                       faults=fault_report(self.metrics, disk=self.disk.fault, geoip=lambda: geoip_fault(self.geoip))),
            IngestContext(pipeline=self.pipeline, registry=self.registry, receipts=receipts, metrics=self.metrics,
                          settings=config.ingest, idempotency=self.idempotency),
            self.access(),
        )

    def listener_addresses(self) -> list[str]:
        return self.sources.addresses()

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry.open()
        self.idempotency.open()
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
        await self.pipeline.drain(self.config.ingest.shutdown_drain_seconds)  # before the bus stops
        await self.bus.stop()
        self.geoip.close()
        self.idempotency.close()
        self.registry.close()


class WebRole(RoleBase):
    def __init__(self, config: Config) -> None:
        super().__init__(config, "web")
        self.registry = registry_for(config)
        self.store = open_store(config, self.metrics)  # read only here
        public = build_public_view(config)
        self.hub = live_hub(config, self.metrics, public)
        self.app = create_web_app(
            WebContext(registry=self.registry, store=self.store, backlog=self.store, metrics=self.metrics,
                       ingest_settings=config.ingest, formats=sorted([*build_adapters(config), "auto"]),
                       live=self.hub, role="web", sharing_identity=config.server.instance_name,
                       benign=BenignNetworks(config.correlation.benign_networks),
                       export_min_confidence=config.correlation.export_min_confidence, public=public),
            self.access(public))

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


def build_role(config: Config) -> RoleBase:
    from honeyatlas.service.worker import WorkerRole

    roles: dict[str, type[RoleBase]] = {"ingest": IngestRole, "worker": WorkerRole, "web": WebRole}
    return roles[config.server.role](config)
