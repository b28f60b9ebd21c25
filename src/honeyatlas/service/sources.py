"""The network and file sources of a process, built from the Config, started and stopped
together: syslog listeners, hpfeeds endpoints, the hpfeeds subscriber and followed files.

The HTTP source is a route of the web app (web/app.py), not built here. Pulling sources
(the subscriber, followed files) must run in one process only when several ingest processes
share a bus: the ingest role gives `pulling=False` to all but the holder of the lease.
"""

from __future__ import annotations

import asyncio
import ssl

from honeyatlas.config import Config
from honeyatlas.enrichment.sensors import SensorDirectory
from honeyatlas.errors import ConfigError
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest
from honeyatlas.sources.file import FileSource, FollowSpec, parse_follow
from honeyatlas.sources.hpfeeds import HpfeedsEndpoint
from honeyatlas.sources.hpfeeds_subscriber import HpfeedsSubscriber
from honeyatlas.sources.syslog import ListenAddress, SyslogLimits, SyslogListener, parse_listen, tls_server_context
from honeyatlas.store import Receipts


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


def _follow_specs(config: Config, formats: list[str]) -> list[FollowSpec]:
    specs = []
    for text in config.file.follow:
        try:
            spec = parse_follow(text)
        except ValueError as exc:
            raise ConfigError("file.follow", str(exc)) from exc
        if spec.format not in formats:
            raise ConfigError("file.follow", f"{text!r}: unknown format {spec.format!r}; see `docs/sources.md`")
        specs.append(spec)
    return specs


class Sources:
    def __init__(self, config: Config, *, pipeline: Ingest, registry: SensorDirectory, receipts: Receipts,
                 metrics: Metrics) -> None:
        self._config = config
        self._pipeline = pipeline
        self._registry = registry
        self._receipts = receipts
        self._metrics = metrics
        self._syslog_addresses = _listen_addresses("syslog.listen", config.syslog.listen, ("udp", "tcp", "tls"))
        self._hpfeeds_addresses = _listen_addresses("hpfeeds.listen", config.hpfeeds.listen, ("tcp", "tls"))
        self._follow_specs = _follow_specs(config, pipeline.formats())
        self.syslog: list[SyslogListener] = []
        self.hpfeeds: list[HpfeedsEndpoint] = []
        self.hpfeeds_subscriber: HpfeedsSubscriber | None = None
        self.files: list[tuple[FileSource, asyncio.Task[None]]] = []
        self._file_metrics()

    @property
    def has_pulling(self) -> bool:
        """Whether any source pulls (subscriber, followed files): those need one owner in a cluster."""
        return bool(self._follow_specs) or self._config.hpfeeds_subscriber.host is not None

    async def start(self, *, listening: bool = True, pulling: bool = True) -> None:
        """Listening sources (syslog, hpfeeds endpoints) and, if `pulling`, the pulling ones.
        TLS contexts read files, so they are built here rather than in the constructor."""
        if listening:
            await self._start_syslog()
            await self._start_hpfeeds()
        if pulling:
            await self.start_pulling()

    async def start_pulling(self) -> None:
        cfg = self._config
        sub = cfg.hpfeeds_subscriber
        if sub.host is not None and sub.ident and sub.secret and self.hpfeeds_subscriber is None:
            client_tls = ssl.create_default_context(cafile=sub.tls_ca_path) if sub.tls else None
            self.hpfeeds_subscriber = HpfeedsSubscriber(
                pipeline=self._pipeline, registry=self._registry, metrics=self._metrics, host=sub.host,
                port=sub.port, ident=sub.ident, secret=sub.secret, channels=sub.channels, ident_map=sub.ident_map,
                channel_formats=cfg.hpfeeds.channel_formats, ssl_context=client_tls,
                backoff_initial_seconds=sub.backoff_initial_seconds, backoff_max_seconds=sub.backoff_max_seconds,
            )
            await self.hpfeeds_subscriber.start()
        if not self.files:
            settings = cfg.file
            for spec in self._follow_specs:
                source = FileSource(
                    spec, pipeline=self._pipeline, registry=self._registry, receipts=self._receipts,
                    state_dir=cfg.data_dir / "file-offsets", batch_max_records=settings.batch_max_records,
                    poll_interval_seconds=settings.poll_interval_seconds, buffer_max_bytes=settings.buffer_max_bytes,
                )
                source.state_path.parent.mkdir(parents=True, exist_ok=True)
                self.files.append((source, asyncio.create_task(source.run(), name=f"file {spec.path}")))

    async def stop_pulling(self) -> None:
        for source, task in self.files:
            source.stop()
            await task
        self.files = []
        if self.hpfeeds_subscriber is not None:
            await self.hpfeeds_subscriber.stop()
            self.hpfeeds_subscriber = None

    async def _start_syslog(self) -> None:
        cfg = self._config.syslog
        tls = (tls_server_context(cfg.tls_cert_path, cfg.tls_key_path)
               if cfg.tls_cert_path and cfg.tls_key_path and any(a.transport == "tls" for a in self._syslog_addresses)
               else None)
        limits = SyslogLimits(**{name: getattr(cfg, name) for name in SyslogLimits.__struct_fields__})
        for address in self._syslog_addresses:
            listener = SyslogListener(address, pipeline=self._pipeline, registry=self._registry, metrics=self._metrics,
                                      limits=limits, ssl_context=tls if address.transport == "tls" else None)
            await listener.start()
            self.syslog.append(listener)

    async def _start_hpfeeds(self) -> None:
        hp = self._config.hpfeeds
        tls = (tls_server_context(hp.tls_cert_path, hp.tls_key_path)
               if hp.tls_cert_path and hp.tls_key_path and any(a.transport == "tls" for a in self._hpfeeds_addresses)
               else None)
        for address in self._hpfeeds_addresses:
            endpoint = HpfeedsEndpoint(
                pipeline=self._pipeline, registry=self._registry, metrics=self._metrics, host=address.host,
                port=address.port, broker_name=hp.broker_name,
                ssl_context=tls if address.transport == "tls" else None, channel_formats=hp.channel_formats,
                max_connections=hp.max_connections, max_connections_per_address=hp.max_connections_per_address,
                auth_timeout_seconds=hp.auth_timeout_seconds,
                max_message_bytes=hp.max_message_bytes,
            )
            await endpoint.start()
            self.hpfeeds.append(endpoint)

    async def stop(self) -> None:
        await self.stop_pulling()  # first: they store what they already received
        for component in [*reversed(self.hpfeeds), *reversed(self.syslog)]:
            await component.stop()
        self.hpfeeds, self.syslog = [], []

    def addresses(self) -> list[str]:
        """Where the sources listen or read, as `kind transport:host:port`, once started."""
        found = [
            f"syslog {a.transport}:{listener.bound[0]}:{listener.bound[1]}"
            for a, listener in zip(self._syslog_addresses, self.syslog, strict=False)
        ]
        found += [
            f"hpfeeds {a.transport}:{a.host}:{e.port}" for a, e in zip(self._hpfeeds_addresses, self.hpfeeds, strict=False)
        ]
        if self.hpfeeds_subscriber is not None:
            sub = self._config.hpfeeds_subscriber
            found.append(f"hpfeeds subscriber -> {sub.host}:{sub.port}")
        found += [f"file {s.path} ({s.spec.format}, sensor {s.spec.sensor})" for s, _ in self.files]
        return found

    def _file_metrics(self) -> None:
        def values(field: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
            return [((("sensor", s.spec.sensor), ("file", s.path.name)), getattr(s.status(), field))
                    for s, _ in self.files]

        for name, field in (("lines_delivered_total", "lines_sent"), ("retries_total", "retries"),
                            ("buffered_bytes", "buffered_bytes"), ("rotations_total", "rotations")):
            self._metrics.gauge(f"honeyatlas_file_source_{name}", lambda field=field: values(field))
