"""The composition root: config -> every component, started and stopped in order.

This is the only module that picks backends and builds components; everything else gets
what it needs through its constructor. Constructors do no I/O; `start()` opens files and
databases, `stop()` closes them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from honeyatlas.adapters import Adapter, load_adapters
from honeyatlas.adapters.detect import AUTO
from honeyatlas.adapters.mapped import build_mapped_adapter
from honeyatlas.config import Config
from honeyatlas.enrichment.geoip import (
    BUNDLED_ASN_DB,
    BUNDLED_CENTROIDS,
    BUNDLED_COUNTRY_DB,
    DEFAULT_CITY_SEARCH_DIRS,
    GeoIP,
    find_city_database,
)
from honeyatlas.errors import ConfigError, HoneyatlasError
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Pipeline
from honeyatlas.sinks.hub import LiveHub
from honeyatlas.sources.bulk import ImportProgress, import_file
from honeyatlas.sources.demo import DemoHoneynet
from honeyatlas.store.duckdb import DuckDBStore
from honeyatlas.store.registry import SensorRegistry
from honeyatlas.transforms.dedupe import SessionDeduplicator
from honeyatlas.transforms.geolocate import Geolocator
from honeyatlas.web.api import WebContext
from honeyatlas.web.app import create_app

__all__ = ["ImportProgress", "Service", "registry_for"]

log = logging.getLogger(__name__)


def registry_for(config: Config) -> SensorRegistry:
    """The sensor registry of a data directory (also used by the `sensor` commands)."""
    return SensorRegistry(config.data_dir / "registry.sqlite3")


def _existing(key: str, value: str | None, default: Path | None) -> Path | None:
    if value is None:
        return default
    path = Path(value)
    if not path.is_file():
        raise ConfigError(key, f"file {path} not found")
    return path


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn so a taken port is one clear
    error. Created with proto IPPROTO_TCP on purpose: asyncio sets TCP_NODELAY on accepted
    connections only when the listener's proto says TCP, and without it every response
    waits ~40 ms for Nagle and delayed ACKs (measured: GET /metrics 45 ms -> 3 ms)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        try:
            timezone = zoneinfo.ZoneInfo(config.ingest.sensor_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError("ingest.sensor_timezone", f"unknown time zone {config.ingest.sensor_timezone!r}") from exc
        geo = config.geoip
        self.geoip = GeoIP(
            city_path=self._city_database(),
            country_path=_existing("geoip.country_db_path", geo.country_db_path, BUNDLED_COUNTRY_DB) or BUNDLED_COUNTRY_DB,
            asn_path=_existing("geoip.asn_db_path", geo.asn_db_path, BUNDLED_ASN_DB),
            centroids_path=BUNDLED_CENTROIDS,
            cache_size=geo.cache_size,
        )
        geoip = self.geoip
        for counter in ("hits", "misses", "evictions"):
            self.metrics.gauge(
                f"honeyatlas_geoip_cache_{counter}_total", lambda counter=counter: [((), geoip.cache_info()[counter])]
            )
        self.registry = registry_for(config)
        self.store = DuckDBStore(
            config.data_dir / "events.duckdb",
            max_pending_events=config.storage.max_pending_events,
            write_batch_max_events=config.storage.write_batch_max_events,
            metrics=self.metrics,
        )
        live = config.live
        self.hub = LiveHub(
            frame_interval_seconds=live.frame_interval_seconds,
            client_queue_events=live.client_queue_events,
            snapshot_events=live.snapshot_events,
            heartbeat_seconds=live.heartbeat_seconds,
            max_clients=live.max_clients,
            metrics=self.metrics,
        )
        self.deduplicator = SessionDeduplicator(
            ttl_seconds=config.ingest.session_dedup_ttl_seconds,
            max_sessions=config.ingest.session_dedup_max_sessions,
        )
        dedup = self.deduplicator
        self.metrics.gauge("honeyatlas_dedupe_sessions", lambda: [((), len(dedup))])
        self.metrics.gauge(
            "honeyatlas_dedupe_evictions",
            lambda: [((("reason", "size"),), dedup.evicted_by_size), ((("reason", "age"),), dedup.evicted_by_age)],
        )
        self.pipeline = Pipeline(
            adapters=self._adapters(),
            geolocator=Geolocator(self.geoip, cache_size=geo.cache_size),
            deduplicator=self.deduplicator,
            store=self.store,
            hub=self.hub,
            metrics=self.metrics,
            sensor_timezone=timezone,
            retry_after_seconds=config.ingest.retry_after_seconds,
        )
        self.demo = (
            DemoHoneynet(
                pipeline=self.pipeline,
                registry=self.registry,
                events_per_second=config.demo.events_per_second,
                seed=config.demo.seed,
            )
            if config.demo.enabled
            else None
        )
        self.app = create_app(
            WebContext(
                pipeline=self.pipeline,
                registry=self.registry,
                store=self.store,
                hub=self.hub,
                metrics=self.metrics,
                ingest_settings=config.ingest,
                geoip_status=self._geoip_status,
            )
        )

    def _adapters(self) -> dict[str, Adapter]:
        """Entry-point adapters (built-in and third-party) plus the configured mappings."""
        adapters = load_adapters()
        for name, mapping in self.config.mappings.items():
            if name in adapters or name == AUTO:
                raise ConfigError(f"mappings.{name}", "a format with this name already exists; rename the mapping")
            if not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", name):
                raise ConfigError(f"mappings.{name}", "use a lowercase name of letters, digits, '.', '_' or '-'")
            adapters[name] = build_mapped_adapter(name, mapping)
        return adapters

    def _city_database(self) -> Path | None:
        geo = self.config.geoip
        if geo.city_db_path is not None:
            return _existing("geoip.city_db_path", geo.city_db_path, None)
        if not geo.search_city_db:
            return None
        return find_city_database([self.config.data_dir / "geoip", *DEFAULT_CITY_SEARCH_DIRS])

    def _geoip_status(self) -> dict[str, Any]:
        city = self.geoip.city_database
        return {
            "precision": "city" if city else "country",
            "city_database": str(city) if city else None,
            "cache": self.geoip.cache_info(),
        }

    async def start(self) -> None:
        self.registry.open()
        await self.store.start()
        self.geoip.open()
        self.hub.seed(await self.store.recent_events(self.config.live.snapshot_events))
        await self.hub.start()
        if self.demo is not None:
            await self.demo.start()

    async def stop(self) -> None:
        if self.demo is not None:
            await self.demo.stop()
        await self.hub.stop()
        await self.store.stop()
        self.geoip.close()
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
        await self.start()
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
        host, port = self.config.server.host, self.config.server.port
        try:
            listener = _listen(host, port)
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from exc
        try:
            await self.start()
        except BaseException:
            listener.close()
            raise
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                ws="websockets-sansio",
                ws_per_message_deflate=False,  # measured: deflate costs ~4x the CPU per frame
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            bound_host, bound_port = listener.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            if on_ready is not None and server.started:
                on_ready(f"http://{shown}:{bound_port}/")
            await task
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            listener.close()
            await self.stop()
