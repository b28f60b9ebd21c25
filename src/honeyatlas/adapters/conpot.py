"""The `conpot` format: conpot's hpfeeds payload (channel conpot.events), and its JSON log.

conpot publishes every event of an attack session as it happens (conpot/core/loggers/
log_worker.py, hpfriends.py). Captured from conpot 0.6.0 (tests/data/samples):

    {"id": "e203776a-…", "remote": ["198.51.100.7", 36024], "data_type": "modbus",
     "timestamp": "2026-11-27T23:58:03.677730", "public_ip": null,
     "data": {"request": null, "slave_id": 1, "function_code": 3, "response": null}}

Older conpot sent `session_id` and a list of PDUs in `data`
(`[{"request_pdu": "0300000002", "function_code": 3, "slave_id": 1, "response_pdu": "…"}]`);
later versions add `local`, `src_ip`/`src_port` and `dst_ip`/`dst_port`. conpot's JSON log
file (what T-Pot ships) flattens one event into the record itself:
`{"timestamp", "sensorid", "id", "src_ip", "src_port", "dst_ip", "dst_port", "public_ip",
"data_type", "request", "response", "event_type"}`. All of these are read.

One event per PDU (a record with no PDU still says the attacker connected):

    PDU                                          kind         other fields
    type NEW_CONNECTION, CONNECTION_*            connection
    http request                                 web_request  url, user_agent
    guardian_ast / kamstrup_management request   command      command (the text sent)
    any other type (e.g. "SNMPv2c get")          other
    modbus request with a function code          other        signature "modbus function code 3"
    anything else (s7comm, enip, errors, ...)    other
    no PDU at all                                connection

`action` is "conpot.<type>" ("conpot.NEW_CONNECTION", "conpot.SNMPv2c get"), "conpot.request"
for a PDU without a type, "conpot.session" for a record without a PDU.

Common fields: `protocol` is `data_type` lowercased (modbus, s7comm, snmp, http, bacnet,
ipmi, enip, iec104, ...), `transport` is the one that protocol runs on in conpot (none for
enip, which uses both), `session` is conpot's session id, `src_ip`/`src_port` from `remote`
or `src_ip`/`src_port`, `dst_ip`/`dst_port` from `local` or `dst_ip`/`dst_port`, else
`dst_ip` from `public_ip` (T-Pot's logstash renames dst_* to dest_*: both are read).
Outcome is always unknown. On a T-Pot sensor, T-Pot's `type: "ConPot"` sets `honeypot`.

Decisions worth knowing:
- The binary protocols' `request`/`response` are hex or, in conpot 0.6.0, null (bytes its
  JSON encoder drops); hex never goes into a text field. The http `request` is Python's
  repr of (path, headers, body): the path and the User-Agent and Host headers are read
  from it as written (escapes kept), and `url` is "http://host/path" as for glastopf.
- conpot groups the connections of one source address into one session per protocol, and
  `remote` keeps the port of the first one: `src_port` may belong to an earlier connection.
- `timestamp` is when conpot opened the session (`datetime.utcnow()` without a zone), so
  every event of a session carries it; it is read as UTC. A payload without one (older
  conpot) gets the receive time without a warning, since hpfeeds delivers as it happens;
  one that is present but unreadable gets the receive time and a warning.
- A record carries at most 256 PDUs as events; the rest are dropped with a warning.
- `sensorid` is conpot's configuration, not the authenticated sensor: it is ignored.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind

Record = dict[Any, Any]

MAX_PDUS = 256
_TRANSPORTS = {
    "modbus": "tcp", "s7comm": "tcp", "http": "tcp", "ftp": "tcp", "guardian_ast": "tcp", "iec104": "tcp",
    "kamstrup_protocol": "tcp", "kamstrup_management_protocol": "tcp",
    "snmp": "udp", "bacnet": "udp", "ipmi": "udp", "tftp": "udp",
}
_COMMAND_PROTOCOLS = ("guardian_ast", "kamstrup_management_protocol")
# repr((path, [(name, value), ...], body)): a quoted Python string, either quote style.
_QUOTED = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""
_REPR_PATH = re.compile(r"\(" + _QUOTED)
_REPR_HEADER = {
    name: re.compile(r"\(['\"]" + name + r"['\"], " + _QUOTED + r"\)", re.IGNORECASE)
    for name in ("host", "user-agent")
}
_REPR_SCAN = 16384  # characters of the repr searched for headers


def _repr_string(pattern: re.Pattern[str], text: str, search: bool) -> str | None:
    match = (pattern.search if search else pattern.match)(text[:_REPR_SCAN])
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def _http(request: str, notes: list[str]) -> dict[str, Any]:
    path = _repr_string(_REPR_PATH, request, search=False)
    host = _repr_string(_REPR_HEADER["host"], request, search=True)
    return {
        "url": get.http_url(path, host, notes),
        "user_agent": _repr_string(_REPR_HEADER["user-agent"], request, search=True),
    }


def _pdus(record: Record, notes: list[str]) -> list[Record]:
    """The record's PDUs: `data` as one object, a list, or {elapsed_ms: pdu}; else the record's own fields."""
    if "data" not in record:  # conpot's JSON log: one event, flattened into the record
        return [{"type": record.get("event_type"), "request": record.get("request")}]
    data = record["data"]
    if isinstance(data, (dict, list)) and not data:
        return []
    if isinstance(data, dict):
        by_time = all(isinstance(key, str) and key.isdigit() for key in data)  # AttackSession.dump()
        items = list(data.values()) if by_time else [data]
    elif isinstance(data, list):
        items = data
    else:
        if data is not None:
            notes.append("data is neither an object nor a list; dropped")
        return []
    pdus = [item for item in items[:MAX_PDUS] if isinstance(item, dict)]
    if len(pdus) < min(len(items), MAX_PDUS):
        notes.append(f"data: {min(len(items), MAX_PDUS) - len(pdus)} entries are not objects; dropped")
    if len(items) > MAX_PDUS:
        notes.append(f"data: {len(items) - MAX_PDUS} entries beyond the first {MAX_PDUS} dropped")
    return pdus


def _classify(pdu: Record, protocol: Any, notes: list[str]) -> tuple[Kind, dict[str, Any]]:
    event_type, request = pdu.get("type"), pdu.get("request")
    typed = isinstance(event_type, str) and event_type != ""
    fields: dict[str, Any] = {"action": f"conpot.{event_type}" if typed else "conpot.request"}
    if typed and (event_type == "NEW_CONNECTION" or event_type.startswith("CONNECTION_")):
        return Kind.CONNECTION, fields
    if protocol in _COMMAND_PROTOCOLS and isinstance(request, str):
        return Kind.COMMAND, {**fields, "command": request}
    if not typed and protocol == "http" and isinstance(request, str):
        return Kind.WEB_REQUEST, {**fields, **_http(request, notes)}
    code = pdu.get("function_code")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        fields["signature"] = f"{protocol} function code {code}"
    return Kind.OTHER, fields


def _pair(value: Any) -> tuple[Any, Any]:
    """(address, port) from conpot's [ip, port] pair; a bare address has no port."""
    if isinstance(value, list):
        address, port, *_ = [*value[:2], None, None]
        return address, port
    return value, None


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    data_type = record.get("data_type")
    if data_type is None:
        raise RecordRejected("not a conpot event")
    notes: list[str] = []
    protocol = (data_type.strip().lower() or None) if isinstance(data_type, str) else get.text(data_type, "data_type", notes)
    remote_ip, remote_port = _pair(record.get("remote"))
    local_ip, local_port = _pair(record.get("local"))
    src_ip = get.first_present(("remote", remote_ip), ("src_ip", record.get("src_ip")))
    src_port = get.first_present(("remote port", remote_port), ("src_port", record.get("src_port")))
    dst_ip = get.first_present(("local", local_ip), ("dst_ip", record.get("dst_ip")), ("dest_ip", record.get("dest_ip")),
                    ("public_ip", record.get("public_ip")))
    dst_port = get.first_present(("local port", local_port), ("dst_port", record.get("dst_port")),
                      ("dest_port", record.get("dest_port")))
    session = record.get("id") if record.get("id") is not None else record.get("session_id")
    common: dict[str, Any] = {
        "protocol": protocol,
        "transport": _TRANSPORTS.get(protocol) if isinstance(protocol, str) else None,
        "session": get.text(session, "id", notes),
        "src_ip": get.address(src_ip[1], src_ip[0], notes),
        "src_port": get.port(src_port[1], src_port[0], notes),
        "dst_ip": get.address(dst_ip[1], dst_ip[0], notes),
        "dst_port": get.port(dst_port[1], dst_port[0], notes),
        "honeypot": get.tpot_honeypot(record, "conpot"),
    }
    timestamp = record.get("timestamp")
    ts = ctx.received if timestamp is None else parse_timestamp(timestamp, UTC)

    listed: list[str] = []  # what reading `data` cost: reported on the first event only
    pdus = _pdus(record, listed)
    if not pdus:  # no PDU: the record still says the attacker connected
        return [make_event(ctx, Kind.CONNECTION, ts=ts, warnings=notes + listed, action="conpot.session", **common)]
    events = []
    for number, pdu in enumerate(pdus):
        own = notes + listed if number == 0 else list(notes)
        kind, fields = _classify(pdu, protocol, own)
        events.append(make_event(ctx, kind, ts=ts, warnings=own, **common, **fields))
    return events


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "data_type" in record and (
        "remote" in record or "session_id" in record or "sensorid" in record or "data" in record
    )


ADAPTER = Adapter(
    name="conpot",
    description="conpot hpfeeds channel conpot.events (one message per session event), or conpot's JSON log",
    adapt=adapt,
    detect=detect,
    priority=30,
)
