"""The `dionaea` format: dionaea's log_json records, one per connection, nested or flat.

dionaea's `log_json` ihandler (modules/python/dionaea/log_json.py) writes one record when a
connection is freed:

    {"timestamp": "2026-11-27T21:42:54.275704", "src_ip": "::ffff:198.51.100.7", "src_port": 40000,
     "src_hostname": "", "dst_ip": "::ffff:192.0.2.10", "dst_port": 21,
     "connection": {"protocol": "ftpd", "transport": "tcp", "type": "accept"},
     "credentials": [{"username": "anonymous", "password": "guest@"}],
     "ftp": {"commands": [{"command": "USER", "arguments": ["anonymous"]}]}}

With `flat_data: true` (T-Pot's setting) lists of objects become objects of lists, and a
list-valued field inside them is joined with spaces:
`"credentials": {"username": [...], "password": [...]}`,
`"ftp": {"commands": {"command": ["USER", "PASS"], "arguments": ["anonymous", "guest@"]}}`.
Both layouts are read, and so is the layout the ihandler's documentation still shows
(`connection.remote.{address,port}`, `connection.local.{address,port}`).

One record becomes several events, all with the record's addresses and timestamp:

    what                     kind           outcome   action
    the connection           connection     unknown   dionaea.connection.<transport>.<type>
    each credential          login_attempt  unknown   dionaea.modules.python.<ftp|mssql|mysql>.login
    each ftp command         command        unknown   dionaea.modules.python.ftp.command

The actions are dionaea's own incident names. `command` is the command and its arguments
joined with a space ("USER anonymous").

Decisions worth knowing:
- A login's outcome is `unknown`: log_json records the credentials offered, never whether
  dionaea accepted them, and guessing either way would skew the success statistics.
- A `listen` record describes the honeypot opening one of its own ports when it starts or
  stops, not an attacker: it raises RecordIgnored.
- `timestamp` has no zone, but dionaea writes `datetime.utcnow()`: it is read as UTC,
  whatever `ingest.sensor_timezone` says (that setting is for formats that write local
  time). It is when the connection was opened, so every event of the record carries it.
- `protocol` is dionaea's service name made comparable with other sensors (smbd -> smb,
  httpd -> http, mssqld -> mssql, epmapper -> msrpc, ...); an unknown service name is kept,
  lowercased. A `tls` transport is TCP; the action still says tls.
- T-Pot's logstash renames `dst_ip`/`dst_port` to `dest_ip`/`dest_port` and replaces
  `credentials` by top-level `username`/`password` (lists joined with commas): all are read,
  the latter as one login. Its `type: "Dionaea"` sets the event's `honeypot`.
- A record lists at most 256 credentials and 256 commands as events; the rest are
  dropped with a warning on the connection event (raw keeps the record).
- log_json has no session id, so `session` stays empty; `src_hostname` and `p0f` have no
  event field and are dropped (raw keeps them).

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from datetime import UTC
from itertools import zip_longest
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind

Record = dict[Any, Any]

MAX_LISTED = 256  # credentials or commands turned into events, per record
# dionaea's service (connection class) names -> the protocol names other sensors use.
SERVICE_PROTOCOLS = {
    "smbd": "smb",
    "epmapper": "msrpc",
    "httpd": "http",
    "ftpd": "ftp",
    "ftpdatacon": "ftp-data",
    "ftpdatalisten": "ftp-data",
    "mssqld": "mssql",
    "mysqld": "mysql",
    "sipsession": "sip",
    "tftpserverhandler": "tftp",
    "tftpclient": "tftp",
    "pptpd": "pptp",
    "mqttd": "mqtt",
    "upnpd": "upnp",
    "mongod": "mongodb",
}
_LOGIN_SERVICES = ("ftp", "mssql", "mysql")  # the modules that raise a *.login incident
_TOKEN = re.compile(r"[a-z0-9_-]{1,24}")


def service_protocol(value: Any) -> Any:
    """dionaea's service name as an application protocol; None when it is not text."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    return SERVICE_PROTOCOLS.get(name, name) or None


def transport_of(value: Any) -> str | None:
    """tcp, udp, or tcp for dionaea's tls; anything else that is a short token, lowercased."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value.lower()):
        return None
    name = value.lower()
    return "tcp" if name == "tls" else name


def connection_action(transport: Any, connection_type: Any) -> str:
    """dionaea's incident name for a connection, e.g. dionaea.connection.tcp.accept."""
    parts = [transport, connection_type]
    if all(isinstance(part, str) and _TOKEN.fullmatch(part.lower()) for part in parts):
        return f"dionaea.connection.{transport.lower()}.{connection_type.lower()}"
    return "dionaea.connection"


def _object(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _rows(value: Any, keys: tuple[str, ...], name: str, notes: list[str]) -> list[Record]:
    """Entries of a nested list of objects or of a flat object of lists, at most MAX_LISTED."""
    if value is None:
        return []
    if isinstance(value, list):
        total = len(value)
        rows = [item for item in value[:MAX_LISTED] if isinstance(item, dict)]
        if len(rows) < min(total, MAX_LISTED):
            notes.append(f"{name}: {min(total, MAX_LISTED) - len(rows)} entries are not objects; dropped")
    elif isinstance(value, dict):  # flat_data: one list per key, entries matched by position
        columns = [value.get(key) for key in keys]
        columns = [[] if column is None else column if isinstance(column, list) else [column] for column in columns]
        total = max(len(column) for column in columns)
        rows = [dict(zip(keys, row, strict=True)) for row in zip_longest(*(c[:MAX_LISTED] for c in columns))]
    else:
        notes.append(f"{name} is neither a list nor an object; dropped")
        return []
    if total > MAX_LISTED:
        notes.append(f"{name}: {total - MAX_LISTED} entries beyond the first {MAX_LISTED} dropped")
    return rows


def _tpot_credentials(record: Record) -> Any:
    if record.get("username") is None and record.get("password") is None:
        return None
    return [{"username": record.get("username"), "password": record.get("password")}]


def _command_line(row: Record, notes: list[str]) -> str | None:
    """"USER anonymous" from {"command": "USER", "arguments": ["anonymous"]} or the flat "anonymous"."""
    command, arguments = row.get("command"), row.get("arguments")
    if not isinstance(command, str):
        if command is not None:
            notes.append("ftp command is not text; dropped")
        return None
    words = arguments if isinstance(arguments, list) else [arguments]
    return " ".join([command, *(word for word in words if isinstance(word, str))])


def _endpoint(record: Record, names: tuple[str, ...], nested: Record, nested_key: str, path: str) -> tuple[str, Any]:
    """(name, value) from the record's own keys, else from the documented nested layout.

    The name is returned so a warning quotes the field that was actually read.
    """
    for name in names:
        if record.get(name) is not None:
            return name, record[name]
    return path, nested.get(nested_key)


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    connection = record.get("connection")
    if not isinstance(connection, dict):
        raise RecordRejected("not a dionaea log_json record")
    connection_type = connection.get("type")
    if connection_type == "listen":
        raise RecordIgnored("dionaea listen record: the honeypot opened a port")

    notes: list[str] = []
    remote, local = _object(connection.get("remote")), _object(connection.get("local"))
    src_name, src_ip = _endpoint(record, ("src_ip",), remote, "address", "connection.remote.address")
    sport_name, src_port = _endpoint(record, ("src_port",), remote, "port", "connection.remote.port")
    dst_name, dst_ip = _endpoint(record, ("dst_ip", "dest_ip"), local, "address", "connection.local.address")
    dport_name, dst_port = _endpoint(record, ("dst_port", "dest_port"), local, "port", "connection.local.port")
    transport = connection.get("transport")
    protocol = service_protocol(connection.get("protocol"))
    common: dict[str, Any] = {
        "transport": transport_of(transport),
        "protocol": protocol,
        "src_ip": get.address(src_ip, src_name, notes),
        "src_port": get.port(src_port, sport_name, notes),
        "dst_ip": get.address(dst_ip, dst_name, notes),
        "dst_port": get.port(dst_port, dport_name, notes),
        "honeypot": get.tpot_honeypot(record, "dionaea"),
    }
    ts = parse_timestamp(record.get("timestamp"), UTC)

    listed: list[str] = []  # what the lists cost: reported on the connection event only
    # T-Pot's logstash replaces `credentials` by top-level `username`/`password`.
    found = record["credentials"] if "credentials" in record else _tpot_credentials(record)
    credentials = _rows(found, ("username", "password"), "credentials", listed)
    ftp = _object(record.get("ftp"))
    commands = _rows(ftp.get("commands"), ("command", "arguments"), "ftp.commands", listed)

    events = [
        make_event(
            ctx, Kind.CONNECTION, ts=ts, warnings=notes + listed,
            action=connection_action(transport, connection_type), **common,
        )
    ]
    login_action = f"dionaea.modules.python.{protocol}.login" if protocol in _LOGIN_SERVICES else "dionaea.login"
    for row in credentials:
        own = list(notes)
        events.append(make_event(
            ctx, Kind.LOGIN_ATTEMPT, ts=ts, warnings=own, action=login_action,
            username=get.text(row.get("username"), "username", own),
            password=get.text(row.get("password"), "password", own),
            **common,
        ))
    for row in commands:
        own = list(notes)
        events.append(make_event(
            ctx, Kind.COMMAND, ts=ts, warnings=own, action="dionaea.modules.python.ftp.command",
            command=_command_line(row, own), **common,
        ))
    return events


def detect(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("connection"), dict) and (
        "src_ip" in record or "dst_port" in record or "dest_port" in record
    )


ADAPTER = Adapter(
    name="dionaea",
    description="dionaea log_json records (one per connection), nested or flat_data layout",
    adapt=adapt,
    detect=detect,
    priority=30,
)
