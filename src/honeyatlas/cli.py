"""The `honeyatlas` command: parse options, build the Config, hand it to the service.

Every command that touches stored state takes --data-dir and --config. Errors are one
line on stderr that says what to do, with exit status 2. The service (litestar, DuckDB) is
imported only by the commands that build it, so `user`, `token` and `sensor` answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honeyatlas import __version__
from honeyatlas.access import Role
from honeyatlas.cluster import run_cluster
from honeyatlas.config import ROLES, Config, load_config
from honeyatlas.enrichment.sensors import AUTO_FORMAT, Sensor, SensorSettings
from honeyatlas.errors import HoneyatlasError
from honeyatlas.forwarder import add_arguments as forward_arguments
from honeyatlas.forwarder import run_command as run_forward
from honeyatlas.sources import simulate
from honeyatlas.store.accounts import generate_password
from honeyatlas.store.open import open_accounts, open_registry
from honeyatlas.store.registry import DEFAULT_GRACE_SECONDS

if TYPE_CHECKING:
    from honeyatlas.service import ImportProgress


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes any word starting with `-` and a digit (`-33.87,151.21`,
    `-1e3`, `-.5`) as a value, not as an unknown option.

    argparse's own rule only knows plain negative numbers, so `--location -33.87,151.21` (every
    sensor south of the equator or west of Greenwich) was "expected one argument". None of our
    options is spelled like a number, so nothing is lost; Python 3.13 uses this same rule.
    Subcommand parsers inherit the class (add_subparsers uses type(parent)).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")


def _location(text: str) -> tuple[float, float]:
    form = "expected LAT,LON in decimal degrees such as 50.11,8.68 or -33.87,151.21"
    try:
        lat_text, lon_text = text.split(",", 1)
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{form}, got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"{form}: latitude within -90..90, longitude within -180..180, got {text!r}")
    return lat, lon


_UNSET: Any = object()  # an option not given (as opposed to "default")


def _optional(convert: Any) -> Any:
    """An option value of `convert`, or None for the word `default`."""
    def parse(text: str) -> Any:
        if text == "default":
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or default, got {text!r}") from None
    return parse


def _names(text: str) -> tuple[str, ...] | None:
    """A comma-separated list; None for `default`, empty for `none`."""
    if text == "default":
        return None
    return () if text == "none" else tuple(part.strip() for part in text.split(",") if part.strip())


def _sensor_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--formats", type=_names, default=_UNSET, metavar="F1,F2",
                        help="formats it may send over HTTP (default: its honeypot's formats and auto)")
    parser.add_argument("--rate", type=_optional(float), default=_UNSET, metavar="EVENTS_PER_SECOND",
                        help="events per second it may send (default: the configured limit)")
    parser.add_argument("--burst", type=_optional(int), default=_UNSET, metavar="EVENTS",
                        help="events it may send at once above the rate (default: the configured burst)")
    parser.add_argument("--syslog-from", type=_names, default=_UNSET, metavar="ADDR[,NET]",
                        help="addresses or networks whose syslog messages may name it as HOSTNAME (none: no syslog)")


def _state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="directory holding the store and the sensor registry (default ./data)")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (see docs/configuration.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="honeyatlas", description="Honeypot-driven threat map.")
    parser.add_argument("--version", action="version", version=f"honeyatlas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service: ingest, API, live map")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks a free one)")
    serve.add_argument("--demo", action="store_true", default=None, help="also run a simulated honeynet")
    serve.add_argument("--public", action="store_true", default=None,
                       help="also serve the redacted public map to anyone (docs/security.md)")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS and WSS with this certificate (PEM)")
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument("--hpfeeds-listen", action="append", metavar="tcp:HOST:PORT",
                       help="run an hpfeeds endpoint (repeatable; tls:HOST:PORT with hpfeeds.tls_* set)")
    serve.add_argument("--syslog-listen", action="append", metavar="udp:HOST:PORT",
                       help="receive syslog (repeatable; udp:, tcp: or tls:HOST:PORT[?format=F&sensor=S])")
    serve.add_argument("--follow", action="append", metavar="PATH?format=F&sensor=S",
                       help="follow a honeypot's log file on this host (repeatable)")
    serve.add_argument("--role", choices=ROLES, default=None,
                       help="all (default: one process), or ingest, worker or web of a cluster (docs/scaling.md)")
    serve.add_argument("--reuse-port", action="store_true", default=None,
                       help="share the port with other processes of this host (SO_REUSEPORT)")
    serve.add_argument("--worker-index", type=int, metavar="I", help="this worker's index, 0 to --workers - 1")
    serve.add_argument("--workers", type=int, metavar="N", help="how many workers share the stream's partitions")
    _state_options(serve)

    cluster = commands.add_parser("cluster", help="run a small cluster on this host: nats-server, PostgreSQL, "
                                  "ingest, worker and web processes (docs/scaling.md)")
    cluster.add_argument("--dir", default="./cluster", help="state, configuration and logs (default ./cluster)")
    cluster.add_argument("--ingest", type=int, default=2, metavar="N", help="ingest processes on one port (default 2)")
    cluster.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default 2)")
    cluster.add_argument("--host", default="127.0.0.1", help="address the ingest and web processes listen on")
    cluster.add_argument("--port", type=int, default=8080, help="port of the map (web) (default 8080)")
    cluster.add_argument("--ingest-port", type=int, default=8081, help="port sensors send to (default 8081)")
    cluster.add_argument("--partitions", type=int, default=8, help="partitions of the event stream (default 8)")
    cluster.add_argument("--nats-url", help="use this NATS server (with JetStream) instead of starting one")
    cluster.add_argument("--nats-port", type=int, default=4222, help="port of the nats-server started (default 4222)")
    cluster.add_argument("--postgres-url", help="use this PostgreSQL database instead of starting a server")
    cluster.add_argument("--postgres-port", type=int, default=5433,
                         help="port of the PostgreSQL started (default 5433)")
    cluster.add_argument("--demo", action="store_true", help="also run the simulated honeynet (in the first ingest)")

    ingest = commands.add_parser("ingest", help="import a whole log file (plain or gzip) into the data directory")
    ingest.add_argument("file", help="log file, one record per line; gzip is detected")
    ingest.add_argument("--format", required=True, help="record format, e.g. cowrie, opencanary, or auto")
    ingest.add_argument("--sensor", required=True, help="registered sensor the records come from")
    ingest.add_argument("--batch-size", type=int, default=5000, help="records stored per transaction (default 5000)")
    _state_options(ingest)

    forward = commands.add_parser("forward", help="follow a log file on a sensor host and ship it to a server")
    forward_arguments(forward)

    sensor = commands.add_parser("sensor", help="manage the sensors allowed to send events")
    sensor_commands = sensor.add_subparsers(dest="sensor_command", required=True)
    add = sensor_commands.add_parser("add", help="register a sensor and print its ingest token once")
    add.add_argument("name")
    add.add_argument("--honeypot", required=True, help="honeypot type, e.g. cowrie")
    add.add_argument("--location", type=_location, metavar="LAT,LON", help="where the sensor's arcs land")
    add.add_argument("--label", help="free text shown with the sensor")
    add.add_argument("--hpfeeds", action="store_true", help="also create hpfeeds credentials (ident and secret)")
    add.add_argument("--hpfeeds-channels", metavar="CH1,CH2",
                     help="channels the sensor may publish (default: its honeypot's standard channels)")
    _sensor_settings_options(add)
    _state_options(add)
    listing = sensor_commands.add_parser("list", help="list registered sensors")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _state_options(listing)
    setting = sensor_commands.add_parser("set", help="change a sensor's formats, rate, burst or syslog sources "
                                         "(`default` restores a default)")
    setting.add_argument("name")
    _sensor_settings_options(setting)
    _state_options(setting)
    rotate = sensor_commands.add_parser("rotate", help="print a new ingest token (and hpfeeds secret) once; the "
                                        "old ones keep working for the grace period")
    rotate.add_argument("name")
    rotate.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS, metavar="S",
                        help=f"how long the old token keeps working (default {DEFAULT_GRACE_SECONDS:g})")
    _state_options(rotate)
    revoke = sensor_commands.add_parser("revoke", help="revoke a sensor's token; its events stay stored "
                                        "and its name may be registered again")
    revoke.add_argument("name")
    _state_options(revoke)

    roles = [role.value for role in Role]
    user = commands.add_parser("user", help="manage the users who may log in to the map and the query API")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser("add", help="add a user and print a generated password once")
    user_add.add_argument("name")
    user_add.add_argument("--role", dest="account_role", required=True, choices=roles,
                          help="analyst reads everything; admin also manages")
    user_add.add_argument("--password-stdin", action="store_true",
                          help="read the password (12 characters or more) from one line of standard input")
    user_list = user_commands.add_parser("list", help="list users (never their passwords)")
    user_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    passwd = user_commands.add_parser("passwd", help="set a new password (generated, or --password-stdin); "
                                      "ends the user's sessions")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_remove = user_commands.add_parser("remove", help="remove a user and end their sessions")
    user_remove.add_argument("name")
    ensure = user_commands.add_parser("ensure-admin", help="when no user exists yet, add an admin named admin "
                                      "and print its password once (make run does this)")
    for sub in (user_add, user_list, passwd, user_remove, ensure):
        _state_options(sub)

    token = commands.add_parser("token", help="manage read tokens for scripts and SIEMs (Authorization: Bearer)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    token_add = token_commands.add_parser("add", help="add a read token and print it once")
    token_add.add_argument("name")
    token_add.add_argument("--role", dest="account_role", required=True, choices=roles,
                           help="analyst reads everything; admin also manages")
    token_list = token_commands.add_parser("list", help="list read tokens (never the tokens themselves)")
    token_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    token_revoke = token_commands.add_parser("revoke", help="revoke a read token at once")
    token_revoke.add_argument("name")
    for sub in (token_add, token_list, token_revoke):
        _state_options(sub)

    sim = commands.add_parser("simulate", help="write a labelled honeynet trace and its ground truth "
                              "(trace.jsonl, sensors.json, truth.json; docs/correlation.md)")
    sim.add_argument("--out", required=True, metavar="DIR", help="directory for the three files (created if missing)")
    sim.add_argument("--scenario", default="baseline", help=f"one of {', '.join(simulate.SCENARIOS)} (default baseline)")
    sim.add_argument("--sensors", type=int, metavar="N", help="number of sensors (default: the scenario's)")
    sim.add_argument("--rate", type=float, metavar="EVENTS_PER_SECOND",
                     help="background events per second of event time (default: the scenario's)")
    sim.add_argument("--duration-seconds", type=float, metavar="S", help="event time covered (default: the scenario's)")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same bytes (default 1)")
    sim.add_argument("--start", metavar="ISO", help="event time of the start (default 2026-01-01T00:00:00Z)")
    sim.add_argument("--config", metavar="FILE", help="TOML config whose [correlation] thresholds the truth follows")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, dict[str, Any]] = {
        "storage": {"data_dir": args.data_dir},
        "server": {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
                   "role": getattr(args, "role", None), "reuse_port": getattr(args, "reuse_port", None),
                   "tls_cert_path": getattr(args, "tls_cert", None), "tls_key_path": getattr(args, "tls_key", None)},
        "worker": {"index": getattr(args, "worker_index", None), "count": getattr(args, "workers", None)},
        "demo": {"enabled": getattr(args, "demo", None)},
        "public": {"enabled": getattr(args, "public", None)},
        "hpfeeds": {"listen": getattr(args, "hpfeeds_listen", None)},
        "syslog": {"listen": getattr(args, "syslog_listen", None)},
        "file": {"follow": getattr(args, "follow", None)},
    }
    return load_config(args.config, overrides=overrides)


# The server holds a large long-lived heap (GeoIP and dedupe caches, correlation state) and
# allocates short-lived containers by the million: at CPython's default gen0 threshold (700)
# the collector rescans the survivors every few records. See docs/performance.md.
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_gc() -> None:
    """Once the service is up: what start-up allocated is never collected again (freeze), and
    collections run 70x less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _state_arguments(args: argparse.Namespace) -> str:
    """The --data-dir and --config this command was given, to repeat in a printed command."""
    parts = []
    if getattr(args, "data_dir", None):
        parts.append(f"--data-dir {shlex.quote(args.data_dir)}")
    if getattr(args, "config", None):
        parts.append(f"--config {shlex.quote(args.config)}")
    return " ".join(parts)


def _serve(args: argparse.Namespace, config: Config) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from honeyatlas.service import build_service

    service = build_service(config)

    def ready(url: str) -> None:
        _tune_gc()
        demo = " with the demo honeynet" if config.demo.enabled else ""
        role = config.server.role
        where = f"data: {config.data_dir}" if config.storage.backend == "duckdb" else "store: postgresql, bus: nats"
        shown = "serving" if role == "all" else f"serving as {role}"
        print(f"honeyatlas {__version__} {shown} on {url}{demo} ({where})", flush=True)
        for where in service.listener_addresses():
            print(f"  {where}", flush=True)
        if config.public.enabled and role in ("all", "web"):
            print("  public map: on (anyone may see the redacted map and summary)", flush=True)
        hint = service.login_hint(_state_arguments(args)) if role in ("all", "web") else None
        if hint:
            print(f"  {hint}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(service.serve(ready))
    return 0


def _print_progress(progress: ImportProgress) -> None:
    share = progress.bytes_read / progress.bytes_total if progress.bytes_total else 1.0
    rate = progress.records / progress.seconds if progress.seconds else 0.0
    line = (
        f"  {share:6.1%}  {progress.bytes_read / 1048576:8.1f} / {progress.bytes_total / 1048576:.1f} MiB"
        f"  {progress.records:>10,} records  {rate:>9,.0f} records/s"
    )
    end = "\r" if sys.stderr.isatty() else "\n"
    print(line, end=end, file=sys.stderr, flush=True)


def _ingest(args: argparse.Namespace, config: Config) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise HoneyatlasError(f"no file {path}; give the path of a log file")
    if args.batch_size < 1:
        raise HoneyatlasError("--batch-size must be at least 1")
    from honeyatlas.service import Service

    service = Service(config)
    last = [0.0]

    def progress(p: ImportProgress) -> None:
        if p.seconds - last[0] >= (0.5 if sys.stderr.isatty() else 5.0):
            last[0] = p.seconds
            _print_progress(p)

    run = service.import_file(path, fmt=args.format, sensor_name=args.sensor, batch_size=args.batch_size,
                              on_progress=progress)
    result = asyncio.run(run)
    _print_progress(result)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(
        f"imported {path.name}: {result.records:,} records in {result.seconds:.1f} s: "
        f"{result.accepted:,} accepted ({result.events:,} events, {result.warned:,} with warnings), "
        f"{result.rejected:,} rejected, {result.ignored:,} ignored, {result.duplicates:,} duplicate events dropped"
    )
    for reason, count in result.reasons.items():
        print(f"  rejected {count:,}: {reason}")
    return 0


def _sensor_settings(args: argparse.Namespace, config: Config, current: SensorSettings) -> SensorSettings:
    """`current` with the settings options given on the command line; formats checked against
    the formats this configuration knows."""
    formats = current.formats if args.formats is _UNSET else args.formats
    if args.formats is not _UNSET and args.formats is not None:
        from honeyatlas.service.parts import build_adapters

        known = set(build_adapters(config)) | {AUTO_FORMAT}
        unknown = [f for f in args.formats if f not in known]
        if unknown or not args.formats:
            raise HoneyatlasError(f"--formats {','.join(unknown) or 'none'}: give known formats "
                                  f"({', '.join(sorted(known))}) or default")
    rate = current.rate_per_second if args.rate is _UNSET else args.rate
    burst = current.burst if args.burst is _UNSET else args.burst
    sources = current.syslog_sources if args.syslog_from is _UNSET else (args.syslog_from or ())
    return SensorSettings(formats=formats, rate_per_second=rate, burst=burst, syslog_sources=sources)


def _describe_settings(sensor: Sensor) -> str:
    formats = ",".join(sensor.formats) if sensor.formats is not None else f"default ({sensor.honeypot}'s and auto)"
    rate = f"{sensor.rate_per_second:g}/s" if sensor.rate_per_second is not None else "default"
    burst = str(sensor.burst) if sensor.burst is not None else "default"
    sources = ",".join(sensor.syslog_sources) or "none"
    return f"formats {formats}; rate {rate}, burst {burst}; syslog from {sources}"


def _sensor(args: argparse.Namespace, config: Config) -> int:
    registry = open_registry(config)
    registry.open()
    try:
        if args.sensor_command == "add":
            lat, lon = args.location if args.location else (None, None)
            settings = _sensor_settings(args, config, SensorSettings())
            sensor, token = registry.add(args.name, honeypot=args.honeypot, lat=lat, lon=lon, label=args.label,
                                         settings=settings)
            print(f"sensor {sensor.name} registered ({sensor.honeypot}).")
            print(f"ingest token (shown once, store it now): {token}")
            if args.hpfeeds:
                channels = [c.strip() for c in args.hpfeeds_channels.split(",") if c.strip()] if args.hpfeeds_channels else None
                ident, secret = registry.enable_hpfeeds(sensor.name, channels)
                print(f"hpfeeds ident: {ident}")
                print(f"hpfeeds secret (shown once, store it now): {secret}")
            return 0
        if args.sensor_command == "set":
            current = registry.get(args.name)
            if current is None:
                raise HoneyatlasError(f"no sensor named {args.name!r}; see `honeyatlas sensor list`")
            sensor = registry.configure(args.name, _sensor_settings(args, config, current.settings))
            print(f"sensor {sensor.name}: {_describe_settings(sensor)}")
            return 0
        if args.sensor_command == "rotate":
            token, secret = registry.rotate(args.name, args.grace_seconds)
            until = datetime.now(UTC) + timedelta(seconds=args.grace_seconds)
            print(f"new ingest token for {args.name} (shown once, store it now): {token}")
            if secret is not None:
                print(f"new hpfeeds secret (shown once, store it now): {secret}")
            print(f"the old credentials keep working until {until:%Y-%m-%d %H:%M:%S} UTC")
            return 0
        if args.sensor_command == "revoke":
            sensor = registry.revoke(args.name)
            print(f"sensor {sensor.name} revoked at {sensor.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
            return 0
        sensors = registry.list()
        if args.json:
            print(json.dumps([
                {"name": s.name, "honeypot": s.honeypot, "lat": s.lat, "lon": s.lon, "label": s.label,
                 "demo": s.demo, "revoked": s.revoked,
                 "created_at": s.created_at.isoformat() if s.created_at else None,
                 "formats": s.formats, "rate_per_second": s.rate_per_second, "burst": s.burst,
                 "syslog_sources": s.syslog_sources}
                for s in sensors
            ], indent=2))
            return 0
        print(f"{'NAME':24} {'HONEYPOT':10} {'LOCATION':18} {'STATUS':8} LABEL")
        for s in sensors:
            where = f"{s.lat:.2f},{s.lon:.2f}" if s.lat is not None and s.lon is not None else "-"
            print(f"{s.name:24} {s.honeypot:10} {where:18} {'revoked' if s.revoked else 'active':8} {s.label or ''}")
            if s.settings != SensorSettings():
                print(f"  {_describe_settings(s)}")
        return 0
    finally:
        registry.close()


def _read_password() -> str:
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise HoneyatlasError("no password on standard input; send one line, e.g. `printf '%s\\n' \"$PW\" | "
                              "honeyatlas user add NAME --role analyst --password-stdin`")
    return password


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _user(args: argparse.Namespace, config: Config) -> int:
    accounts = open_accounts(config)
    accounts.open()
    try:
        command = args.user_command
        if command == "ensure-admin" and accounts.has_users():
            return 0  # someone can log in already: nothing to do, nothing to say
        if command in ("add", "passwd", "ensure-admin"):
            chosen = getattr(args, "password_stdin", False)
            password = _read_password() if chosen else generate_password()
            if command == "passwd":
                accounts.set_password(args.name, password)
                print(f"password of {args.name} changed; their sessions are ended.")
            elif command == "add":
                accounts.add_user(args.name, Role(args.account_role), password)
                print(f"user {args.name} added ({args.account_role}).")
            else:
                accounts.add_user("admin", Role.ADMIN, password)
                print("first admin added: user admin; log in on the map with the password below.")
            if not chosen:
                print(f"password (shown once, store it now): {password}")
            return 0
        if command == "remove":
            accounts.remove_user(args.name)
            print(f"user {args.name} removed; their sessions are ended.")
            return 0
        users = accounts.users()
        if args.json:
            print(json.dumps([{"name": u.name, "role": u.role.value, "created_at": u.created_at.isoformat(),
                               "last_login": u.last_login.isoformat() if u.last_login else None} for u in users],
                             indent=2))
            return 0
        print(f"{'NAME':24} {'ROLE':8} {'CREATED':17} LAST LOGIN")
        for u in users:
            print(f"{u.name:24} {u.role.value:8} {_when(u.created_at):17} {_when(u.last_login)}")
        return 0
    finally:
        accounts.close()


def _token(args: argparse.Namespace, config: Config) -> int:
    accounts = open_accounts(config)
    accounts.open()
    try:
        if args.token_command == "add":
            token = accounts.add_token(args.name, Role(args.account_role))
            print(f"read token {args.name} added ({args.account_role}); send it as `Authorization: Bearer TOKEN`.")
            print(f"token (shown once, store it now): {token}")
            return 0
        if args.token_command == "revoke":
            accounts.revoke_token(args.name)
            print(f"read token {args.name} revoked.")
            return 0
        tokens = accounts.tokens()
        if args.json:
            print(json.dumps([{"name": t.name, "role": t.role.value, "created_at": t.created_at.isoformat(),
                               "last_used": t.last_used.isoformat() if t.last_used else None,
                               "revoked": t.revoked_at is not None} for t in tokens], indent=2))
            return 0
        print(f"{'NAME':24} {'ROLE':8} {'CREATED':17} {'LAST USED':17} STATUS")
        for t in tokens:
            status = "revoked" if t.revoked_at else "active"
            print(f"{t.name:24} {t.role.value:8} {_when(t.created_at):17} {_when(t.last_used):17} {status}")
        return 0
    finally:
        accounts.close()


def _simulate(args: argparse.Namespace) -> int:
    start = simulate.DEFAULT_START
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise HoneyatlasError(f"--start {args.start!r} is not an ISO-8601 time; write it like "
                                  "2026-01-01T00:00:00Z") from None
    options = simulate.SimulationOptions(scenario=args.scenario, sensors=args.sensors, rate_events_per_second=args.rate,
                                         duration_seconds=args.duration_seconds, seed=args.seed, start=start)
    plan = simulate.plan_simulation(options, load_config(args.config).correlation)
    out = Path(args.out)
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(p: simulate.SimulationProgress) -> None:
        if p.seconds - last[0] >= (0.5 if tty else 5.0):
            last[0] = p.seconds
            print(f"  {p.share:6.1%} of the event time  {p.events:>12,} events  "
                  f"{p.events / p.seconds if p.seconds else 0:>9,.0f} events/s", end="\r" if tty else "\n",
                  file=sys.stderr, flush=True)

    truth = simulate.write_simulation(plan, out, on_progress=progress)
    if tty and last[0]:
        print(file=sys.stderr)
    c = truth.counts
    print(f"wrote {out / 'trace.jsonl'}: {c.events:,} events on {truth.sensors} sensors over "
          f"{truth.duration_seconds:g} s ({c.background_events:,} background from {c.background_sources:,} sources, "
          f"{c.planted_events:,} planted by {len(truth.entities)} entities)")
    print("  truth.json expects " + ", ".join(f"{n} {kind}" for kind, n in c.expected.items())
          + "; near misses " + ", ".join(f"{n} {kind}" for kind, n in c.expected_none.items()))
    print("  sensors.json: register these sensors, then send each record as its sensor in the event format")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "simulate":  # writes a trace to share, nothing at rest
        # Every file this process creates (the data directory, DuckDB and its WAL, the SQLite
        # files and their -wal/-shm, dead letters, offsets, a forwarder's state, a cluster's
        # databases) is its owner's only: set before anything is opened, it covers the files
        # libraries create too.
        os.umask(0o077)
    if args.command == "forward":  # a client: no data directory, no server config
        return run_forward(args)
    try:
        if args.command == "simulate":  # writes files only: no data directory, no service
            return _simulate(args)
        if args.command == "cluster":  # runs `serve --role ...` processes: no service here
            return run_cluster(
                Path(args.dir), ingest=args.ingest, workers=args.workers, ingest_port=args.ingest_port,
                web_port=args.port, host=args.host, partitions=args.partitions, nats_url=args.nats_url,
                nats_port=args.nats_port, postgres_url=args.postgres_url, postgres_port=args.postgres_port,
                demo=args.demo)
        config = config_from(args)
        if args.command == "serve":
            return _serve(args, config)
        if args.command == "ingest":
            return _ingest(args, config)
        if args.command == "user":
            return _user(args, config)
        if args.command == "token":
            return _token(args, config)
        return _sensor(args, config)
    except (HoneyatlasError, OSError) as exc:
        print(f"honeyatlas: error: {exc}", file=sys.stderr)
        return 2
