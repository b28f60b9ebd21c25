"""The `qeeqbox` format: one JSON line of qeeqbox `honeypots` (0.6x) becomes one event.

A record is `{action, server, src_ip, src_port, dest_ip, dest_port, timestamp [, username,
password, status, data{…}, key_fingerprint]}`; `server` names the emulated service
("ssh_server") and `action` what happened.

    action                       kind           outcome                 fields
    process, setup               the honeypot starting (or failing to start) a service:
                                 RecordIgnored("qeeqbox <action>: ...")
    connection                   connection     unknown                 url, user_agent from `data` (http
                                                                        servers with capture_commands)
    login                        login_attempt  status success/failed   username, password
    command, interactive         command        unknown                 command (`data.command`)
    GET, POST, PUT, … (HTTP)     web_request    unknown                 url, user_agent from `data` when present
    anything else                other          unknown                 plus a warning: unknown action

Common: `action` is "qeeqbox.<action>"; `protocol` is the server name without "_server"
("ssh_server" -> ssh, "http_proxy_server" -> http), `transport` udp for the UDP services
(dns, ntp, snmp, sip, dhcp, tftp) and tcp otherwise; `src_*`/`dst_*` from src_ip/src_port
and dest_ip/dest_port (ports arrive as strings).

Decisions worth knowing:
- Time: `timestamp` has no zone and is parsed as UTC whatever `ctx.timezone` says: the
  honeypots logger writes `datetime.utcnow().isoformat()`, so the configured zone (meant for
  honeypots that log local time) would shift every qeeqbox event.
- A failed mysql login carries the hex of the client's scrambled SHA-1 response (or, for a
  packet it could not parse, colon-separated hex bytes) in `password`: dropped with a warning
  so credential statistics never count hashes as passwords; the username is kept. A
  successful one carries the configured plaintext and is kept.
- A public-key ssh login (`key_fingerprint`, no password) keeps `password` None and says so;
  it has no `status` and its outcome is unknown.
- An http `connection` with captured request data and the `GET`/`POST` record that follows
  are two events (connection, web_request): the map counts one connection and one request.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_ip, parse_port, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

Record = dict[Any, Any]

_OWN_ACTIONS = {"process", "setup"}
_HTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}
_COMMAND_ACTIONS = {"command", "interactive"}
_UDP_SERVICES = {"dns", "ntp", "snmp", "sip", "dhcp", "tftp"}
_PROTOCOL_ALIASES = {"http_proxy": "http"}
_STATUS = {"success": Outcome.SUCCESS, "failed": Outcome.FAILURE}
# Hex of a 20-byte SHA-1 scramble, or qeeqbox's ':'-joined hex dump of an unparsed packet.
_SCRAMBLED = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){7,}")


def _text(record: Record, key: str, notes: list[str]) -> Any:
    return get.text(record.get(key), key, notes)


def _address(record: Record, key: str, notes: list[str]) -> str | None:
    value = record.get(key)
    address = parse_ip(value)
    if address is None and value not in (None, ""):
        notes.append(f"{key} is not an IP address; dropped")
    return address


def _port(record: Record, key: str, notes: list[str]) -> int | None:
    value = record.get(key)
    port = parse_port(value)
    if port is None and value not in (None, ""):
        notes.append(f"{key} is not a port number; dropped")
    return port


def _service(server: Any) -> str | None:
    if not isinstance(server, str) or not server.strip():
        return None
    name = server.strip().lower().removesuffix("_server")
    return _PROTOCOL_ALIASES.get(name, name)


def _request(data: Record) -> dict[str, Any]:
    """url and user agent from captured http request data, when there is any."""
    fields: dict[str, Any] = {}
    uri = data.get("uri")
    if isinstance(uri, str):
        fields["url"] = uri
    agent = next((v for k, v in data.items() if isinstance(k, str) and k.lower() == "user-agent"), None)
    if isinstance(agent, str):
        fields["user_agent"] = agent
    return fields


def _login(record: Record, service: str | None, notes: list[str]) -> dict[str, Any]:
    fields = {"username": _text(record, "username", notes)}
    password = _text(record, "password", notes)
    if password is None and record.get("key_fingerprint") is not None:
        notes.append("public-key login; no password")
    elif (
        service == "mysql"
        and record.get("status") != "success"
        and isinstance(password, str)
        and _SCRAMBLED.fullmatch(password)
    ):
        notes.append("scrambled mysql response; password not kept")
    else:
        fields["password"] = password
    return fields


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    action = record.get("action")
    if action is None:
        raise RecordRejected("missing action")
    if not isinstance(action, str) or not action.strip() or not isinstance(record.get("server"), str):
        raise RecordRejected("not a qeeqbox honeypots record")
    action = action.strip()
    if action.lower() in _OWN_ACTIONS:
        raise RecordIgnored(f"qeeqbox {action.lower()}: the honeypot starting a service, not attacker activity")

    notes: list[str] = []
    service = _service(record.get("server"))
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    outcome = Outcome.UNKNOWN
    fields: dict[str, Any]
    if action == "connection":
        kind, fields = Kind.CONNECTION, _request(data)
    elif action == "login":
        kind, fields = Kind.LOGIN_ATTEMPT, _login(record, service, notes)
        outcome = _STATUS.get(str(record.get("status")).lower(), Outcome.UNKNOWN)
    elif action in _COMMAND_ACTIONS:
        command = data.get("command")
        kind, fields = Kind.COMMAND, {"command": command if not isinstance(command, (dict, list)) else None}
    elif action.upper() in _HTTP_METHODS:
        kind, fields = Kind.WEB_REQUEST, _request(data)
    else:
        kind, fields = Kind.OTHER, {}
        notes.append("unknown qeeqbox action; kept as kind other")  # `action` names it

    ts = parse_timestamp(record.get("timestamp"), UTC)
    return [
        make_event(
            ctx, kind, ts=ts, outcome=outcome, warnings=notes,
            action=f"qeeqbox.{action}",
            transport="udp" if service in _UDP_SERVICES else "tcp",
            protocol=service,
            src_ip=_address(record, "src_ip", notes), src_port=_port(record, "src_port", notes),
            dst_ip=_address(record, "dest_ip", notes), dst_port=_port(record, "dest_port", notes),
            **fields,
        )
    ]


def detect(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    server, action = record.get("server"), record.get("action")
    return isinstance(server, str) and server.endswith("_server") and isinstance(action, str)


ADAPTER = Adapter(
    name="qeeqbox",
    description="qeeqbox honeypots JSON lines (one object per line, 0.6x): every emulated service",
    adapt=adapt,
    detect=detect,
    priority=30,
)
