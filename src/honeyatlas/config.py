"""One typed configuration tree, built once at start-up and passed down.

Sources, in increasing precedence: defaults, a TOML file (`--config FILE`), environment
variables `HONEYATLAS_<SECTION>_<OPTION>` (e.g. `HONEYATLAS_SERVER_PORT=9090`), then
command-line flags. Option names carry their units. Every option is documented in
docs/configuration.md; tests/test_config_docs.py fails when one is not. No other module
reads files or the environment for settings.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from honeyatlas.errors import ConfigError

ENV_PREFIX = "HONEYATLAS_"

Port = Annotated[int, Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


ROLES = ("all", "ingest", "worker", "web")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    role: Literal["all", "ingest", "worker", "web"] = "all"
    reuse_port: bool = False  # SO_REUSEPORT: several ingest (or web) processes on one port
    instance_name: Annotated[str, Meta(min_length=1, max_length=128)] = "honeyatlas"
    # Slow clients (docs/reliability.md). nginx-like deadlines: a request head fits in one or
    # two packets, so 10 s is ample even on a bad mobile link and short enough that a
    # slowloris must keep reconnecting; a body must not stall for body_timeout_seconds and
    # must average body_min_bytes_per_second after it (Apache mod_reqtimeout's MinRate).
    # Keep-alive 15 s: forwarders post every second or so and reuse their connection, a
    # browser reconnects cheaply. 64 connections per address covers a NAT of browsers and
    # a host of sensors; behind a reverse proxy every client is the proxy, so raise it or
    # set 0 (no cap) there and let the proxy cap per client.
    header_timeout_seconds: Seconds = 10.0
    body_timeout_seconds: Seconds = 20.0
    body_min_bytes_per_second: Annotated[int, Meta(ge=0)] = 500
    keep_alive_timeout_seconds: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    max_connections_per_address: Annotated[int, Meta(ge=0)] = 64  # HTTP and WebSocket together; 0: no cap
    # HTTPS and WSS served directly (both or neither); behind a reverse proxy leave them unset.
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDRs):
    # the client address the login limits and the access log see (the connection caps count
    # connections, so they see the proxy).
    forwarded_allow_ips: list[str] = []


class StorageConfig(_Section):
    data_dir: str = "./data"
    backend: Literal["duckdb", "postgresql"] = "duckdb"
    url: str | None = None  # postgresql://user@host:5432/db, for backend = "postgresql"
    retention_days: Annotated[int, Meta(ge=0)] = 0  # raw events and dead letters older than this deleted; 0 keeps all
    registry_cache_seconds: Annotated[float, Meta(ge=0, le=300)] = 2.0  # PostgreSQL registry answers kept
    max_pending_events: PositiveInt = 50_000
    write_batch_max_events: PositiveInt = 100_000
    query_timeout_seconds: Seconds = 10.0
    max_concurrent_reads: Annotated[int, Meta(ge=1, le=64)] = 2  # API reads running at once; more wait
    max_queued_reads: Annotated[int, Meta(ge=0, le=10_000)] = 64  # API reads waiting; more get 503
    duckdb_memory_limit_mib: Annotated[int, Meta(ge=0)] = 0  # 0: DuckDB's own default (80% of RAM)
    duckdb_threads: Annotated[int, Meta(ge=0, le=256)] = 0  # 0: one per core
    duckdb_read_niceness: Annotated[int, Meta(ge=0, le=19)] = 10  # nice levels the API's read threads yield
    stats_fold_interval_seconds: Annotated[float, Meta(ge=0.1, le=60)] = 5.0
    checkpoint_threshold_mib: Annotated[int, Meta(ge=1, le=65536)] = 256
    # Below this much free space in data_dir's file system, ingest answers 503 with the reason
    # (before reading the body) instead of failing a commit half-way; 0: no floor.
    min_free_disk_mib: Annotated[int, Meta(ge=0)] = 100


class BusConfig(_Section):
    """The bus between the roles (docs/scaling.md): NATS JetStream. Unused by `--role all`."""

    url: str | None = None  # nats://host:4222; several servers separated by commas
    stream: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "HONEYATLAS"
    subject_prefix: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}$")] = "honeyatlas"
    partitions: Annotated[int, Meta(ge=1, le=256)] = 8
    stream_max_bytes: PositiveInt = 1024 * 1024 * 1024
    stream_max_messages: PositiveInt = 1_000_000
    stream_replicas: Literal[1, 3, 5] = 1  # copies of the stream in a NATS cluster
    duplicate_window_seconds: Annotated[float, Meta(ge=1, le=86400)] = 600.0
    ack_wait_seconds: Seconds = 30.0
    fetch_batch_messages: Annotated[int, Meta(ge=1, le=1024)] = 64
    publish_timeout_seconds: Seconds = 5.0
    lease_ttl_seconds: Annotated[float, Meta(ge=1, le=600)] = 10.0


class WorkerConfig(_Section):
    """Which partitions of the event stream a worker owns: those with `p % count == index`."""

    index: Annotated[int, Meta(ge=0, le=255)] = 0
    count: Annotated[int, Meta(ge=1, le=256)] = 1


class IngestConfig(_Section):
    max_body_bytes: PositiveInt = 10 * 1024 * 1024
    max_decompressed_bytes: PositiveInt = 100 * 1024 * 1024
    max_records_per_request: PositiveInt = 100_000
    sensor_timezone: str = "UTC"
    max_future_skew_seconds: Seconds = 300.0
    retry_after_seconds: PositiveInt = 1
    max_in_flight_requests: PositiveInt = 32
    session_dedup_ttl_seconds: Seconds = 3600.0
    session_dedup_max_sessions: PositiveInt = 100_000
    sensor_silent_after_seconds: Seconds = 900.0
    idempotency_ttl_seconds: Seconds = 86400.0
    idempotency_max_keys_per_sensor: PositiveInt = 100_000
    # Per-sensor rate (token bucket; sources/rates.py), unless the sensor has its own
    # (`sensor set --rate/--burst`). 0: no limit, the default: one process takes ~10,000
    # events/s in all, and a sensor catching up after an outage rightly sends much faster
    # than it usually does; set it when one sensor must not crowd out the others.
    sensor_events_per_second: Annotated[float, Meta(ge=0)] = 0.0
    sensor_burst_events: Annotated[int, Meta(ge=0)] = 0  # 0: ten seconds' worth of the rate
    # At shutdown, how long ingests in flight may take to finish; those still being adapted
    # then are refused whole (503), none is stored half.
    shutdown_drain_seconds: Annotated[float, Meta(ge=0, le=300)] = 10.0


class GeoIPConfig(_Section):
    city_db_path: str | None = None
    country_db_path: str | None = None
    asn_db_path: str | None = None
    search_city_db: bool = True
    cache_size: PositiveInt = 100_000


class LiveConfig(_Section):
    frame_interval_seconds: Annotated[float, Meta(ge=0.05, le=1.0)] = 0.2
    client_queue_events: PositiveInt = 5_000
    snapshot_events: Annotated[int, Meta(ge=0, le=5_000)] = 200
    heartbeat_seconds: Seconds = 5.0
    max_clients: PositiveInt = 2_000
    # The browser sends nothing but pongs and a close frame: 4 KiB is plenty. A client that
    # answers no ping within ping_timeout_seconds (gone, or not reading) is dropped.
    max_incoming_frame_bytes: Annotated[int, Meta(ge=125, le=1024 * 1024)] = 4096
    ping_interval_seconds: Seconds = 20.0
    ping_timeout_seconds: Seconds = 20.0


class DemoConfig(_Section):
    enabled: bool = False
    events_per_second: Annotated[float, Meta(gt=0, le=10_000)] = 4.0
    seed: int | None = None


class HpfeedsConfig(_Section):
    listen: list[str] = []
    broker_name: str = "honeyatlas"
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    max_connections: PositiveInt = 1024
    max_connections_per_address: Annotated[int, Meta(ge=0)] = 32  # a host's honeypots, one connection each; 0: no cap
    auth_timeout_seconds: Seconds = 10.0
    max_message_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    channel_formats: dict[str, str] = {}


class HpfeedsSubscriberConfig(_Section):
    host: str | None = None
    port: Port = 10000
    ident: str | None = None
    secret: str | None = None
    channels: list[str] = []
    ident_map: dict[str, str] = {}
    tls: bool = False
    tls_ca_path: str | None = None
    backoff_initial_seconds: Seconds = 1.0
    backoff_max_seconds: Seconds = 60.0


class SyslogConfig(_Section):
    listen: list[str] = []
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    max_message_bytes: Annotated[int, Meta(ge=480, le=16 * 1024 * 1024)] = 65536
    max_connections: PositiveInt = 1000
    max_connections_per_address: Annotated[int, Meta(ge=0)] = 32  # a host's honeypots, one connection each; 0: no cap
    idle_timeout_seconds: Seconds = 3600.0
    batch_max_messages: PositiveInt = 500
    batch_linger_seconds: Seconds = 0.1
    udp_queue_messages: PositiveInt = 10000
    tls_handshake_timeout_seconds: Seconds = 10.0


class FileConfig(_Section):
    """Log files of honeypots on this host, followed by the server (sources/file.py)."""

    follow: list[str] = []
    batch_max_records: PositiveInt = 500
    poll_interval_seconds: Seconds = 0.2
    buffer_max_bytes: PositiveInt = 16 * 1024 * 1024


class CorrelationConfig(_Section):
    """Streaming detectors (docs/correlation.md). Windows are in event time."""

    enabled: bool = True
    multi_sensor_min_sensors: Annotated[int, Meta(ge=2)] = 3
    multi_sensor_window_seconds: Seconds = 600.0
    multi_sensor_group_by: Literal["ip", "prefix", "asn"] = "ip"
    scan_window_seconds: Seconds = 120.0
    scan_min_ports: Annotated[int, Meta(ge=2)] = 10
    scan_min_sensors: Annotated[int, Meta(ge=2)] = 5
    campaign_window_seconds: Seconds = 3600.0
    campaign_min_sources: Annotated[int, Meta(ge=2)] = 5
    campaign_credential_count: Annotated[int, Meta(ge=1, le=20)] = 3
    campaign_command_count: Annotated[int, Meta(ge=1, le=20)] = 3
    campaign_ignore_client_versions: list[str] = msgspec.field(
        default_factory=lambda: ["SSH-2.0-OpenSSH_", "SSH-2.0-PuTTY", "SSH-2.0-Go", "SSH-2.0-libssh", "SSH-2.0-paramiko_",
                                 "SSH-2.0-AsyncSSH_", "SSH-2.0-JSCH-", "SSH-2.0-Renci.SshNet."]
    )
    # Known before any traffic (transforms/correlate/known.py): credential pairs every bot tries
    campaign_builtin_credentials: bool = True
    campaign_common_credentials: list[str] = []  # more "user/password" pairs common on this honeynet
    # Public file hosts: a download from one is keyed by host and owner path, not by host
    campaign_shared_hosts: list[str] = msgspec.field(
        default_factory=lambda: ["githubusercontent.com", "github.com", "gitlab.com", "bitbucket.org", "pastebin.com",
                                 "paste.ee", "transfer.sh", "catbox.moe", "discordapp.com", "dropbox.com",
                                 "dropboxusercontent.com", "drive.google.com", "mega.nz", "gofile.io", "sourceforge.net",
                                 "anonfiles.com", "file.io", "0x0.st", "termbin.com"]
    )
    campaign_background_half_life_seconds: Seconds = 6 * 3600.0
    campaign_max_background_sources: Annotated[float, Meta(gt=0)] = 2.0
    campaign_common_part_sources: Annotated[int, Meta(ge=2)] = 10
    campaign_warmup_seconds: Annotated[float, Meta(ge=0)] = 3600.0  # background not yet known: low confidence
    export_min_confidence: Annotated[float, Meta(ge=0, le=1)] = 0.5  # campaigns below it stay out of STIX/MISP
    benign_networks: list[str] = []  # research scanners kept out of multi-sensor and campaign incidents
    epidemic_min_sensors: Annotated[int, Meta(ge=2)] = 3
    epidemic_window_seconds: Seconds = 7 * 86400.0
    max_sources: PositiveInt = 100_000
    max_hits_per_source: PositiveInt = 256
    max_sessions: PositiveInt = 100_000
    max_fingerprints: PositiveInt = 50_000
    max_samples: PositiveInt = 20_000
    max_open_incidents: PositiveInt = 10_000
    max_members_per_incident: Annotated[int, Meta(ge=10, le=10_000)] = 500
    future_tolerance_seconds: Seconds = 300.0
    replay_max_events: Annotated[int, Meta(ge=0)] = 200_000
    save_interval_seconds: Annotated[float, Meta(ge=0.05, le=60)] = 1.0


class MappingConfig(_Section):
    """A custom JSON source described in configuration: field paths to event fields."""

    description: str = ""
    fields: dict[str, str] = {}
    kind: str | None = None
    kind_field: str | None = None
    kind_map: dict[str, str] = {}
    default_kind: str = "other"
    outcome_field: str | None = None
    outcome_map: dict[str, str] = {}
    timestamp_field: str | None = None
    timestamp_format: str | None = None
    timezone: str | None = None
    honeypot: str | None = None
    honeypot_field: str | None = None
    detect_fields: list[str] = []


class PublicConfig(_Section):
    """The redacted public map (docs/security.md): off unless asked for."""

    enabled: bool = False
    # Sensor name -> the name the public sees instead of the sensor's country code.
    sensor_aliases: dict[str, Annotated[str, Meta(min_length=1, max_length=64)]] = {}


class WebConfig(_Section):
    """Browser safety and sessions for the map and the query API (docs/security.md)."""

    # Host header values served (DNS rebinding); empty: only loopback names when the server
    # listens on a loopback address, any otherwise (then set it to the names you publish).
    allowed_hosts: list[str] = []
    # Origins, besides the app's own, whose pages may open the live WebSocket.
    allowed_origins: list[str] = []
    session_ttl_seconds: Seconds = 12 * 3600.0  # a working day, then log in again
    # Failed logins allowed per client address and per user name within a minute; the next
    # one answers 429. Five is what an operator mistyping needs and far below guessing.
    login_failures_per_minute: PositiveInt = 5
    access_log: bool = True  # who read what (user or token, route, status) at info level


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mappings: dict[str, MappingConfig] = {}
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    bus: BusConfig = BusConfig()
    worker: WorkerConfig = WorkerConfig()
    ingest: IngestConfig = IngestConfig()
    geoip: GeoIPConfig = GeoIPConfig()
    live: LiveConfig = LiveConfig()
    demo: DemoConfig = DemoConfig()
    hpfeeds: HpfeedsConfig = HpfeedsConfig()
    hpfeeds_subscriber: HpfeedsSubscriberConfig = HpfeedsSubscriberConfig()
    syslog: SyslogConfig = SyslogConfig()
    file: FileConfig = FileConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    public: PublicConfig = PublicConfig()
    web: WebConfig = WebConfig()

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)


def option_names() -> list[str]:
    """Every option as `section.option`, for docs, tests and environment variables."""
    names = []
    for section_name in Config.__struct_fields__:
        if section_name == "mappings":
            continue
        section_type = type(getattr(Config(), section_name))
        names.extend(f"{section_name}.{field}" for field in section_type.__struct_fields__)
    return names


def mapping_option_names() -> list[str]:
    """Options of one custom source mapping, as `mappings.<name>.option`."""
    return [f"mappings.<name>.{field}" for field in MappingConfig.__struct_fields__]


def _section_type(section: str) -> type[_Section]:
    return type(getattr(Config(), section))


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    known = {
        f"{ENV_PREFIX}{name.replace('.', '_').upper()}": name for name in option_names()
    }
    found: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        if key not in known:
            raise ConfigError(key, "unknown environment variable; see docs/configuration.md for the names")
        section, option = known[key].split(".", 1)
        found.setdefault(section, {})[option] = value
    return found


def _merge(target: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in overrides.items():
        target.setdefault(section, {}).update(values)


def load_config(
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the Config: defaults < TOML file < environment < overrides (flags)."""
    tree: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(str(path), "config file not found; check --config") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
        for section, values in tree.items():
            if section not in Config.__struct_fields__:
                raise ConfigError(section, "unknown section; see docs/configuration.md")
            if not isinstance(values, dict):
                raise ConfigError(section, "must be a table, e.g. [server]")
    env_values = _env_overrides(os.environ if environ is None else environ)
    _merge(tree, env_values)
    _merge(tree, {s: {k: v for k, v in vals.items() if v is not None} for s, vals in (overrides or {}).items()})
    sections: dict[str, Any] = {}
    mappings = tree.pop("mappings", {})
    sections["mappings"] = {}
    for name, values in mappings.items():
        try:
            sections["mappings"][name] = msgspec.convert(values, type=MappingConfig, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(_key_of(f"mappings.{name}", exc), str(exc)) from exc
    for section, values in tree.items():
        # strict=False lets environment strings such as "9090" and "true" convert; an empty
        # environment value means "unset" for optional paths.
        cleaned = {k: (None if v == "" else v) for k, v in values.items()}
        try:
            sections[section] = msgspec.convert(cleaned, type=_section_type(section), strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(_key_of(section, exc), str(exc)) from exc
    config = Config(**sections)
    check(config)
    return config


def check(config: Config) -> None:
    """Rules that span options, checked once when the configuration is built."""
    try:
        zoneinfo.ZoneInfo(config.ingest.sensor_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("ingest.sensor_timezone", f"unknown time zone {config.ingest.sensor_timezone!r}") from exc
    for key, section in (("syslog", config.syslog), ("hpfeeds", config.hpfeeds)):
        if any(text.startswith("tls:") for text in section.listen) and not (section.tls_cert_path and section.tls_key_path):
            raise ConfigError(f"{key}.tls_cert_path", "a tls: listener needs tls_cert_path and tls_key_path")
    if bool(config.server.tls_cert_path) != bool(config.server.tls_key_path):
        raise ConfigError("server.tls_cert_path", "HTTPS needs both tls_cert_path and tls_key_path (--tls-cert, --tls-key)")
    sub = config.hpfeeds_subscriber
    if sub.host is not None and not (sub.ident and sub.secret and sub.channels):
        raise ConfigError("hpfeeds_subscriber.channels", "a subscriber needs ident, secret and at least one channel")
    if config.storage.backend == "postgresql" and not config.storage.url:
        raise ConfigError("storage.url", 'storage.backend = "postgresql" needs storage.url = "postgresql://user@host/db"')
    role = config.server.role
    if role != "all":
        if not config.bus.url:
            raise ConfigError("bus.url", f'--role {role} needs a bus: set [bus] url = "nats://host:4222" (docs/scaling.md)')
        if config.storage.backend != "postgresql":
            raise ConfigError("storage.backend", f'--role {role} needs a shared store: set [storage] backend = '
                              '"postgresql" and url = "postgresql://user@host/db" (docs/scaling.md)')
    if config.worker.index >= config.worker.count:
        raise ConfigError("worker.index", f"must be below worker.count ({config.worker.count})")
    if config.worker.count > 1 and config.correlation.multi_sensor_group_by != "ip":
        raise ConfigError("correlation.multi_sensor_group_by", "workers share the stream by source address: "
                          "grouping by prefix or asn needs worker.count = 1")
    if config.demo.enabled and role not in ("all", "ingest"):
        raise ConfigError("demo.enabled", "the demo honeynet feeds a pipeline: use it with --role all or ingest")


def _key_of(section: str, exc: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$.port`"; turn that into "server.port".
    text = str(exc)
    if "`$." in text:
        return f"{section}.{text.split('`$.', 1)[1].split('`', 1)[0]}"
    if "unknown field" in text:
        return f"{section}.{text.split('`', 2)[1]}"
    return section
