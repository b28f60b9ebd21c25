"""The `dionaea-connections` and `dionaea-capture` formats: dionaea's hpfeeds payloads.

dionaea's hpfeeds ihandler (modules/python/dionaea/hpfeeds.py) publishes one JSON object
per message. Two channels carry attacker activity:

`dionaea.connections`, one message per connection incident:

    {"connection_type": "accept", "connection_transport": "tcp", "connection_protocol": "smbd",
     "remote_host": "::ffff:198.51.100.7", "remote_port": 51912, "remote_hostname": "",
     "local_host": "::ffff:192.0.2.10", "local_port": 445}

    connection_type      event                                       action
    accept, reject,      connection, outcome unknown                 dionaea.connection.<transport>.<type>
    connect, pending
    listen               none: RecordIgnored (the honeypot opening one of its ports)
    anything else        connection, plus a warning

`connect` is dionaea itself connecting out (to fetch what an exploit pointed it at) and
`pending` a connection not yet established; the remote end is still `src_ip`, so the map
draws the arc from the attacker's infrastructure to the sensor, and the action tells the
direction.

`dionaea.capture`, one message per completed download:

    {"time": "2026-11-27 21:42:54.275704 UTC +0000", "saddr": "198.51.100.7", "sport": "3006",
     "daddr": "192.0.2.10", "dport": "445", "md5": "0724c68f…", "sha512": "8cbcec5f…",
     "url": "http://198.51.100.7:1852/psgmioap"}

becomes one `file_download` event, outcome success, action `dionaea.download.complete`,
with `url` and `md5`; the ports arrive as strings and are read as numbers.

Decisions worth knowing:
- `sha512` has no event field and is dropped without a warning (a warning on every
  capture would say nothing); `raw` keeps it, and `md5` identifies the file.
- `time` is dionaea's local clock followed by a zone label taken from gmtime(), so the
  label is "+0000" whatever the sensor's zone: the label is ignored and the clock reading
  is read in `ingest.sensor_timezone`. Older dionaea sends no `time`.
- A payload without a time (every connections message, older captures) gets the receive
  time without a warning: hpfeeds delivers as it happens, and the format has no other
  clock. A `time` that is present but unreadable gets the receive time and a warning.
- `protocol` is dionaea's service name made comparable (smbd -> smb; see the dionaea
  format); `remote_hostname` has no event field and is dropped.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.dionaea import connection_action, service_protocol, transport_of
from honeyatlas.adapters.fields import make_event, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

_CONNECTION_TYPES = ("accept", "reject", "connect", "pending")
# "2026-11-27 21:42:54.275704 UTC +0000": the clock reading, then a zone name and offset.
_CAPTURE_TIME = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?)(?: \S{1,8})?(?: [+-]\d{4})?")


def adapt_connection(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    if "connection_type" not in record:
        raise RecordRejected("not a dionaea.connections payload")
    connection_type = record["connection_type"]
    if connection_type == "listen":
        raise RecordIgnored("dionaea listen message: the honeypot opened a port")
    notes: list[str] = []
    if connection_type not in _CONNECTION_TYPES:
        notes.append("unknown dionaea connection_type; kept as a connection")
    transport = record.get("connection_transport")
    fields = {
        "action": connection_action(transport, connection_type),
        "transport": transport_of(transport),
        "protocol": service_protocol(record.get("connection_protocol")),
        "src_ip": get.address(record.get("remote_host"), "remote_host", notes),
        "src_port": get.port(record.get("remote_port"), "remote_port", notes),
        "dst_ip": get.address(record.get("local_host"), "local_host", notes),
        "dst_port": get.port(record.get("local_port"), "local_port", notes),
    }
    return [make_event(ctx, Kind.CONNECTION, ts=ctx.received, warnings=notes, **fields)]


def _capture_time(value: Any, ctx: RecordContext) -> Any:
    if value is None:
        return ctx.received  # older dionaea: no clock in the payload at all
    match = _CAPTURE_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    return parse_timestamp(match.group(1), ctx.timezone) if match else None


def adapt_capture(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    if "md5" not in record and "url" not in record:
        raise RecordRejected("not a dionaea.capture payload")
    notes: list[str] = []
    fields = {
        "action": "dionaea.download.complete",
        "url": get.text(record.get("url"), "url", notes),
        "md5": get.digest(record.get("md5"), "md5", 32, notes),
        "src_ip": get.address(record.get("saddr"), "saddr", notes),
        "src_port": get.port(record.get("sport"), "sport", notes),
        "dst_ip": get.address(record.get("daddr"), "daddr", notes),
        "dst_port": get.port(record.get("dport"), "dport", notes),
    }
    ts = _capture_time(record.get("time"), ctx)
    return [make_event(ctx, Kind.FILE_DOWNLOAD, ts=ts, outcome=Outcome.SUCCESS, warnings=notes, **fields)]


def detect_connection(record: Any) -> bool:
    return isinstance(record, dict) and "connection_type" in record and "remote_host" in record


def detect_capture(record: Any) -> bool:
    return isinstance(record, dict) and "saddr" in record and "md5" in record


CONNECTIONS = Adapter(
    name="dionaea-connections",
    description="dionaea hpfeeds channel dionaea.connections (one message per connection)",
    adapt=adapt_connection,
    detect=detect_connection,
    priority=30,
)
CAPTURE = Adapter(
    name="dionaea-capture",
    description="dionaea hpfeeds channel dionaea.capture (one message per downloaded file)",
    adapt=adapt_capture,
    detect=detect_capture,
    priority=30,
)
