"""The composition root: config -> every component, started and stopped in order.

This package is the only place that builds components and picks backends (through
store/open.py and the bus); everything else gets what it needs through its constructor.
Constructors do no I/O; `start()` opens files, databases and connections, `stop()` closes
them in reverse order. One module per role: `all` (this module: one process, embedded
DuckDB), and `ingest`, `worker`, `web` (service/roles.py) over NATS JetStream and
PostgreSQL. `build_service(config)` picks by `server.role`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from honeyatlas.access import Accounts
from honeyatlas.config import Config
from honeyatlas.enrichment.sensors import SensorDirectory
from honeyatlas.errors import HoneyatlasError
from honeyatlas.incident import IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Pipeline
from honeyatlas.service.correlation import CorrelationRuntime
from honeyatlas.service.http import serve
from honeyatlas.service.parts import (
    build_adapters,
    build_correlator,
    build_deduplicator,
    build_geoip,
    build_public_view,
    fault_report,
    geoip_fault,
    geoip_status,
    sensor_timezone,
)
from honeyatlas.service.sources import Sources
from honeyatlas.sinks.hub import SNAPSHOT_INCIDENTS, LiveHub
from honeyatlas.sinks.store import StoreSink
from honeyatlas.sources.bulk import ImportProgress, import_file
from honeyatlas.sources.demo import DemoHoneynet
from honeyatlas.sources.hpfeeds import HpfeedsEndpoint
from honeyatlas.sources.idempotency import IdempotencyStore
from honeyatlas.store import IncidentQuery, Store
from honeyatlas.store.accounts import login_hint
from honeyatlas.store.disk import DiskFloor
from honeyatlas.store.open import open_accounts, open_registry, open_store
from honeyatlas.transforms.correlate.benign import BenignNetworks
from honeyatlas.transforms.geolocate import Geolocator
from honeyatlas.transforms.redact import PublicView
from honeyatlas.web.access import AccessPolicy
from honeyatlas.web.api import WebContext
from honeyatlas.web.app import IngestContext, create_app

__all__ = ["ImportProgress", "Runnable", "Service", "build_service", "registry_for"]


def registry_for(config: Config) -> SensorDirectory:
    """The sensor registry of a configuration (also used by the `sensor` commands)."""
    return open_registry(config)


class Runnable(Protocol):
    """What the CLI runs: any role."""

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None: ...

    def listener_addresses(self) -> list[str]: ...

    def login_hint(self, state_options: str = "") -> str | None:
        """How to create a first user, while nobody can log in (None once one exists)."""


def access_policy(config: Config, accounts: Accounts, metrics: Metrics, public: PublicView | None) -> AccessPolicy:
    """Who may read what in this process's web app (web/access.py)."""
    return AccessPolicy(accounts=accounts, settings=config.web, metrics=metrics, public=public,
                        listen_host=config.server.host)


def build_service(config: Config) -> Runnable:
    """The process `server.role` asks for."""
    if config.server.role == "all":
        return Service(config)
    from honeyatlas.service.roles import build_role

    return build_role(config)


def live_hub(config: Config, metrics: Metrics, public: PublicView | None = None) -> LiveHub:
    live = config.live
    return LiveHub(
        views={"public": public} if public is not None else None,
        frame_interval_seconds=live.frame_interval_seconds,
        client_queue_events=live.client_queue_events,
        snapshot_events=live.snapshot_events,
        heartbeat_seconds=live.heartbeat_seconds,
        max_clients=live.max_clients,
        metrics=metrics,
    )


async def seed_hub(hub: LiveHub, store: Store, config: Config) -> None:
    hub.seed(
        await store.recent_events(config.live.snapshot_events),
        await store.query_incidents(IncidentQuery(status=IncidentStatus.OPEN, limit=SNAPSHOT_INCIDENTS)),
    )


class Service:
    """`--role all`: one process; sources, pipeline, store, hub and web in-process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.geoip = build_geoip(config, self.metrics)
        self.registry = registry_for(config)
        self.idempotency = IdempotencyStore(
            config.data_dir / "idempotency.sqlite3",
            ttl_seconds=config.ingest.idempotency_ttl_seconds,
            max_keys_per_sensor=config.ingest.idempotency_max_keys_per_sensor,
            metrics=self.metrics,
        )
        self.store = open_store(config, self.metrics)
        self.accounts = open_accounts(config)
        public = build_public_view(config)
        self.hub = live_hub(config, self.metrics, public)
        correlator = build_correlator(config, self.metrics)
        self.sink = StoreSink(
            store=self.store, live=self.hub, deduplicator=build_deduplicator(config, self.metrics),
            metrics=self.metrics, correlator=correlator,
            incident_save_interval_seconds=config.correlation.save_interval_seconds,
        )
        self.correlation = (
            CorrelationRuntime(correlator, settings=config.correlation, store=self.store, sink=self.sink)
            if correlator is not None else None
        )
        self.disk = DiskFloor(config.data_dir, min_free_mib=config.storage.min_free_disk_mib, metrics=self.metrics)
        faults = fault_report(self.metrics, disk=self.disk.fault, store=lambda: self.sink.write_fault,
                              geoip=lambda: geoip_fault(self.geoip))
        self.pipeline = Pipeline(
            adapters=build_adapters(config),
            geolocator=Geolocator(self.geoip, cache_size=config.geoip.cache_size),
            sink=self.sink,
            metrics=self.metrics,
            sensor_timezone=sensor_timezone(config),
            retry_after_seconds=config.ingest.retry_after_seconds,
            max_future_skew=timedelta(seconds=config.ingest.max_future_skew_seconds),
            guards=[self.disk],
        )
        self.demo = (
            DemoHoneynet(pipeline=self.pipeline, registry=self.registry,
                         events_per_second=config.demo.events_per_second, seed=config.demo.seed)
            if config.demo.enabled else None
        )
        self.sources = Sources(config, pipeline=self.pipeline, registry=self.registry, receipts=self.store,
                               metrics=self.metrics)
        self.app = create_app(
            WebContext(
                registry=self.registry, store=self.store, backlog=self.store, metrics=self.metrics,
                ingest_settings=config.ingest, formats=self.pipeline.formats(), live=self.hub,
                geoip_status=lambda: geoip_status(self.geoip), faults=faults,
                sharing_identity=config.server.instance_name,
                benign=BenignNetworks(config.correlation.benign_networks),
                export_min_confidence=config.correlation.export_min_confidence, public=public,
            ),
            IngestContext(pipeline=self.pipeline, registry=self.registry, receipts=self.store, metrics=self.metrics,
                          settings=config.ingest, idempotency=self.idempotency),
            access_policy(config, self.accounts, self.metrics, public),
        )

    @property
    def hpfeeds(self) -> list[HpfeedsEndpoint]:
        return self.sources.hpfeeds

    def listener_addresses(self) -> list[str]:
        return self.sources.addresses()

    def login_hint(self, state_options: str = "") -> str | None:
        return login_hint(self.accounts, state_options)

    async def start(self, *, listeners: bool = True) -> None:
        """Open storage and enrichment, then (unless `listeners` is False, as for a bulk
        import) the network sources and the demo."""
        self.registry.open()
        self.accounts.open()
        self.idempotency.open()
        await self.store.start()
        self.geoip.open()
        if self.correlation is not None:
            await self.correlation.start()
        await seed_hub(self.hub, self.store, self.config)
        await self.hub.start()
        if listeners:
            await self.sources.start()
            if self.demo is not None:
                await self.demo.start()

    async def stop(self) -> None:
        await self.sources.stop()  # first: they store what they already received
        if self.demo is not None:
            await self.demo.stop()  # stopping a demo that never started is a no-op
        await self.pipeline.drain(self.config.ingest.shutdown_drain_seconds)  # before the store stops
        await self.hub.stop()
        if self.correlation is not None:
            await self.correlation.stop()
        await self.store.stop()
        self.geoip.close()
        self.idempotency.close()
        self.accounts.close()
        self.registry.close()

    async def import_file(
        self,
        path: Path,
        *,
        fmt: str,
        sensor_name: str,
        batch_size: int,
        on_progress: Callable[[ImportProgress], None] | None = None,
    ) -> ImportProgress:
        """Start the storage side, import one log file through the pipeline, stop."""
        if fmt not in self.pipeline.formats():
            raise HoneyatlasError(f"unknown format {fmt!r}; known formats: {', '.join(self.pipeline.formats())}")
        await self.start(listeners=False)
        try:
            sensor = self.registry.get(sensor_name)
            if sensor is None or sensor.revoked:
                raise HoneyatlasError(f"no active sensor named {sensor_name!r}; add it with `honeyatlas sensor add`")
            return await import_file(
                self.pipeline, path=path, fmt=fmt, sensor=sensor, batch_size=batch_size, on_progress=on_progress
            )
        finally:
            await self.stop()

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Start everything, serve HTTP until cancelled or signalled, then stop cleanly."""
        await serve(self.app, self.config.server, live=self.config.live, metrics=self.metrics, start=self.start,
                    stop=self.stop, on_ready=on_ready,
                    drain_seconds=self.config.ingest.shutdown_drain_seconds)


