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
import ssl
import time
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
from honeyatlas.incident import Incident, IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Pipeline
from honeyatlas.sinks.hub import SNAPSHOT_INCIDENTS, LiveHub
from honeyatlas.sources.bulk import ImportProgress, import_file
from honeyatlas.sources.demo import DemoHoneynet
from honeyatlas.sources.file import FileSource, FollowSpec, parse_follow
from honeyatlas.sources.hpfeeds import HpfeedsEndpoint
from honeyatlas.sources.hpfeeds_subscriber import HpfeedsSubscriber
from honeyatlas.sources.idempotency import IdempotencyStore
from honeyatlas.sources.syslog import ListenAddress, SyslogLimits, SyslogListener, parse_listen, tls_server_context
from honeyatlas.store import IncidentQuery
from honeyatlas.store.duckdb import DuckDBStore
from honeyatlas.store.registry import SensorRegistry
from honeyatlas.transforms.correlate import Correlator
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
        self.idempotency = IdempotencyStore(
            config.data_dir / "idempotency.sqlite3",
            ttl_seconds=config.ingest.idempotency_ttl_seconds,
            max_keys_per_sensor=config.ingest.idempotency_max_keys_per_sensor,
            metrics=self.metrics,
        )
        self.store = DuckDBStore(
            config.data_dir / "events.duckdb",
            max_pending_events=config.storage.max_pending_events,
            write_batch_max_events=config.storage.write_batch_max_events,
            metrics=self.metrics,
            receipt_ttl_seconds=config.ingest.idempotency_ttl_seconds,
            stats_fold_interval_seconds=config.storage.stats_fold_interval_seconds,
            checkpoint_threshold_mib=config.storage.checkpoint_threshold_mib,
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
        self.correlator = Correlator(config.correlation) if config.correlation.enabled else None
        if self.correlator is not None:
            self._correlation_metrics(self.correlator)
        self.pipeline = Pipeline(
            adapters=self._adapters(),
            geolocator=Geolocator(self.geoip, cache_size=geo.cache_size),
            deduplicator=self.deduplicator,
            store=self.store,
            hub=self.hub,
            metrics=self.metrics,
            sensor_timezone=timezone,
            retry_after_seconds=config.ingest.retry_after_seconds,
            correlator=self.correlator,
            incident_save_interval_seconds=config.correlation.save_interval_seconds,
        )
        self._incident_saver: asyncio.Task[None] | None = None
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
        self._syslog_addresses = self._listen_addresses("syslog.listen", config.syslog.listen, ("udp", "tcp", "tls"))
        self._hpfeeds_addresses = self._listen_addresses("hpfeeds.listen", config.hpfeeds.listen, ("tcp", "tls"))
        for key, addresses, section in (
            ("syslog", self._syslog_addresses, config.syslog),
            ("hpfeeds", self._hpfeeds_addresses, config.hpfeeds),
        ):
            if any(a.transport == "tls" for a in addresses) and not (section.tls_cert_path and section.tls_key_path):
                raise ConfigError(f"{key}.tls_cert_path", "a tls: listener needs tls_cert_path and tls_key_path")
        sub = config.hpfeeds_subscriber
        if sub.host is not None and not (sub.ident and sub.secret and sub.channels):
            raise ConfigError("hpfeeds_subscriber.channels", "a subscriber needs ident, secret and at least one channel")
        self.syslog: list[SyslogListener] = []
        self.hpfeeds: list[HpfeedsEndpoint] = []
        self.hpfeeds_subscriber: HpfeedsSubscriber | None = None
        self._follow_specs = self._follow_specs_of(config)
        self.files: list[tuple[FileSource, asyncio.Task[None]]] = []
        self._file_metrics()
        self.app = create_app(
            WebContext(
                pipeline=self.pipeline,
                registry=self.registry,
                store=self.store,
                hub=self.hub,
                metrics=self.metrics,
                ingest_settings=config.ingest,
                idempotency=self.idempotency,
                geoip_status=self._geoip_status,
                sharing_identity=config.server.instance_name,
            )
        )

    def _correlation_metrics(self, correlator: Correlator) -> None:
        detectors = correlator.detectors
        self.metrics.gauge("honeyatlas_correlation_tracked",
                           lambda: [((("detector", name),), d.tracked) for name, d in detectors.items()])
        self.metrics.gauge("honeyatlas_correlation_evictions_total",
                           lambda: [((("detector", name),), d.evictions) for name, d in detectors.items()])
        self.metrics.gauge("honeyatlas_incidents_open", lambda: [((), correlator.open_incidents)])
        self.metrics.gauge("honeyatlas_incidents_opened_total",
                           lambda: [((("kind", kind),), n) for kind, n in sorted(correlator.opened.items())])
        self.metrics.gauge("honeyatlas_incidents_forced_closures_total", lambda: [((), correlator.forced_closures)])

    async def _save_incidents(self) -> None:
        while True:
            await asyncio.sleep(self.config.correlation.save_interval_seconds)
            try:
                await self.pipeline.save_incidents()
            except HoneyatlasError as exc:  # kept and retried at the next tick
                log.warning("saving incidents failed: %s", exc)

    async def _rebuild_correlation(self, correlator: Correlator) -> None:
        started = time.monotonic()
        recent, payloads = correlator.replay_windows()
        produced: dict[str, Incident] = {}
        count = 0
        # In chunks: the whole replay at once (200,000 events by default) left a server
        # started on a big store at ~1 GiB RSS.
        async for chunk in self.store.events_for_replay(
            window_seconds=recent, payload_window_seconds=payloads, limit=self.config.correlation.replay_max_events
        ):
            count += len(chunk)
            produced.update(await asyncio.to_thread(correlator.replay, chunk))
        stored_open = await self.store.query_incidents(
            IncidentQuery(status=IncidentStatus.OPEN, limit=self.config.correlation.max_open_incidents)
        )
        if not produced and not stored_open:
            return
        await self.store.append([], [], None, correlator.end_rebuild(produced, stored_open))
        log.info("correlation state rebuilt from %d stored events in %.1f s (%d incidents open)",
                 count, time.monotonic() - started, correlator.open_incidents)

    @staticmethod
    def _listen_addresses(key: str, texts: list[str], transports: tuple[str, ...]) -> list[ListenAddress]:
        addresses = []
        for text in texts:
            try:
                address = parse_listen(text)
            except ValueError as exc:
                raise ConfigError(key, str(exc).replace("syslog listen", "listen")) from exc
            if address.transport not in transports:
                raise ConfigError(key, f"{text!r}: use one of {', '.join(t + ':HOST:PORT' for t in transports)}")
            addresses.append(address)
        return addresses

    async def _start_listeners(self) -> None:
        """Network sources besides HTTP; their TLS contexts read files, so they are built here."""
        cfg = self.config
        syslog_tls = (
            tls_server_context(cfg.syslog.tls_cert_path, cfg.syslog.tls_key_path)
            if cfg.syslog.tls_cert_path and cfg.syslog.tls_key_path and any(
                a.transport == "tls" for a in self._syslog_addresses)
            else None
        )
        limits = SyslogLimits(**{name: getattr(cfg.syslog, name) for name in SyslogLimits.__struct_fields__})
        for address in self._syslog_addresses:
            listener = SyslogListener(address, pipeline=self.pipeline, registry=self.registry, metrics=self.metrics,
                                      limits=limits, ssl_context=syslog_tls if address.transport == "tls" else None)
            await listener.start()
            self.syslog.append(listener)
        hp = cfg.hpfeeds
        hp_tls = (
            tls_server_context(hp.tls_cert_path, hp.tls_key_path)
            if hp.tls_cert_path and hp.tls_key_path and any(a.transport == "tls" for a in self._hpfeeds_addresses)
            else None
        )
        for address in self._hpfeeds_addresses:
            endpoint = HpfeedsEndpoint(
                pipeline=self.pipeline, registry=self.registry, metrics=self.metrics, host=address.host,
                port=address.port, broker_name=hp.broker_name,
                ssl_context=hp_tls if address.transport == "tls" else None, channel_formats=hp.channel_formats,
                max_connections=hp.max_connections, auth_timeout_seconds=hp.auth_timeout_seconds,
                max_message_bytes=hp.max_message_bytes,
            )
            await endpoint.start()
            self.hpfeeds.append(endpoint)
        sub = cfg.hpfeeds_subscriber
        if sub.host is not None and sub.ident and sub.secret:
            client_tls = ssl.create_default_context(cafile=sub.tls_ca_path) if sub.tls else None
            self.hpfeeds_subscriber = HpfeedsSubscriber(
                pipeline=self.pipeline, registry=self.registry, metrics=self.metrics, host=sub.host, port=sub.port,
                ident=sub.ident, secret=sub.secret, channels=sub.channels, ident_map=sub.ident_map,
                channel_formats=hp.channel_formats, ssl_context=client_tls,
                backoff_initial_seconds=sub.backoff_initial_seconds, backoff_max_seconds=sub.backoff_max_seconds,
            )
            await self.hpfeeds_subscriber.start()
        await self._start_files()

    def _follow_specs_of(self, config: Config) -> list[FollowSpec]:
        specs = []
        for text in config.file.follow:
            try:
                spec = parse_follow(text)
            except ValueError as exc:
                raise ConfigError("file.follow", str(exc)) from exc
            if spec.format not in self.pipeline.formats():
                raise ConfigError("file.follow", f"{text!r}: unknown format {spec.format!r}; see `docs/sources.md`")
            specs.append(spec)
        return specs

    async def _start_files(self) -> None:
        settings = self.config.file
        for spec in self._follow_specs:
            source = FileSource(
                spec, pipeline=self.pipeline, registry=self.registry, store=self.store,
                state_dir=self.config.data_dir / "file-offsets", batch_max_records=settings.batch_max_records,
                poll_interval_seconds=settings.poll_interval_seconds, buffer_max_bytes=settings.buffer_max_bytes,
            )
            source.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.files.append((source, asyncio.create_task(source.run(), name=f"file {spec.path}")))

    async def _stop_files(self) -> None:
        for source, task in self.files:
            source.stop()
            await task
        self.files = []

    def _file_metrics(self) -> None:
        def values(field: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
            return [((("sensor", s.spec.sensor), ("file", s.path.name)), getattr(s.status(), field))
                    for s, _ in self.files]

        for name, field in (("lines_delivered_total", "lines_sent"), ("retries_total", "retries"),
                            ("buffered_bytes", "buffered_bytes"), ("rotations_total", "rotations")):
            self.metrics.gauge(f"honeyatlas_file_source_{name}", lambda field=field: values(field))

    def listener_addresses(self) -> list[str]:
        """Where the network sources listen, as `kind transport:host:port`, once started."""
        found = [
            f"syslog {a.transport}:{listener.bound[0]}:{listener.bound[1]}"
            for a, listener in zip(self._syslog_addresses, self.syslog, strict=False)
        ]
        found += [
            f"hpfeeds {a.transport}:{a.host}:{e.port}" for a, e in zip(self._hpfeeds_addresses, self.hpfeeds, strict=False)
        ]
        if self.hpfeeds_subscriber is not None:
            sub = self.config.hpfeeds_subscriber
            found.append(f"hpfeeds subscriber -> {sub.host}:{sub.port}")
        found += [f"file {s.path} ({s.spec.format}, sensor {s.spec.sensor})" for s, _ in self.files]
        return found

    async def _stop_listeners(self) -> None:
        await self._stop_files()
        if self.hpfeeds_subscriber is not None:
            await self.hpfeeds_subscriber.stop()
            self.hpfeeds_subscriber = None
        for component in [*reversed(self.hpfeeds), *reversed(self.syslog)]:
            await component.stop()
        self.hpfeeds, self.syslog = [], []

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

    async def start(self, *, listeners: bool = True) -> None:
        """Open storage and enrichment, then (unless `listeners` is False, as for a bulk
        import) the network sources and the demo."""
        self.registry.open()
        self.idempotency.open()
        await self.store.start()
        self.geoip.open()
        if self.correlator is not None and self.config.correlation.replay_max_events:
            await self._rebuild_correlation(self.correlator)
        self.hub.seed(
            await self.store.recent_events(self.config.live.snapshot_events),
            await self.store.query_incidents(IncidentQuery(status=IncidentStatus.OPEN, limit=SNAPSHOT_INCIDENTS)),
        )
        if self.correlator is not None:
            self._incident_saver = asyncio.create_task(self._save_incidents(), name="incident-saver")
        await self.hub.start()
        if listeners:
            await self._start_listeners()
            if self.demo is not None:
                await self.demo.start()

    async def stop(self) -> None:
        await self._stop_listeners()  # first: they store what they already received
        if self.demo is not None:
            await self.demo.stop()  # stopping a demo that never started is a no-op
        await self.hub.stop()
        if self._incident_saver is not None:
            self._incident_saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._incident_saver
            self._incident_saver = None
            await self.pipeline.save_incidents()
        await self.store.stop()
        self.geoip.close()
        self.idempotency.close()
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
                http="h11",  # measured: with httptools installed ("auto"), ingest fell 7,800 -> 6,600 events/s
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
