"""The `cowrie` format: one record of cowrie's JSON log (`cowrie.json`) becomes one event.

Every event id cowrie 2.x and 3.x writes has a kind; `action` keeps the event id itself.

    eventid (without "cowrie.")             kind           outcome   fields besides the common ones
    session.connect, session.closed         connection     unknown
    client.version                          connection     unknown   client_version (2.x bytes repr unwrapped)
    client.kex, .var, .size, .malformed_packet
                                            connection     unknown
    client.fingerprint                      connection     unknown   username
    login.success / login.failed            login_attempt  success / failure   username, password
    command.input, command.success          command        success   command
    command.failed                          command        failure   command
    command.chpasswd                        command        unknown   username (the account changed)
    session.input                           command        unknown   command (a line fed to stdin)
    session.file_download                   file_download  success   url, sha256
    session.file_download.failed            file_download  failure   url
    session.file_upload                     file_upload    success   url (cowrie's target path), sha256
    telnet.option, telnet.error             connection     unknown
    telnet.exploit_attempt                  exploit        unknown   signature (the CVE)
    telnet.exploit_success                  exploit        success   signature, username, command
    direct-tcpip.*                          other          unknown   url = tcp://forward-target:port
    tunnelproxy-tcpip.data                  other          unknown
    session.params, log.open, log.closed    other          unknown
    proxy.*, reversedns.*, virustotal.*, greynoise.*, urlhaus.*, malwarebazaar.*, abuseipdb.*
                                            other          unknown
    anything else starting with "cowrie."   other          unknown   plus a warning: unknown eventid

Common fields: `ts` from `timestamp`, `src_ip`/`src_port`, `dst_ip`/`dst_port` (the honeypot),
`session`, `transport` "tcp", and `protocol` from the record (ssh|telnet) or, when absent,
inferred from the event family (telnet.* is telnet, direct-tcpip.* is ssh) or the honeypot
port (22/2222 ssh, 23/2223 telnet).

Decisions worth knowing:
- In direct-tcpip.*, tunnelproxy-tcpip.* and reversedns.forward records `dst_ip`/`dst_port`
  are the attacker's forward target, not the honeypot: they never become the event's
  destination. For direct-tcpip the target is kept as `url` ("tcp://host:port"; the host may
  be a name the attacker typed).
- A public-key login has no password: `password` stays None, so credential statistics never
  count key fingerprints as passwords, and a warning says it was a key login. The warning
  quotes the fingerprint only when it has the shape cowrie writes (hex pairs or SHA256:…),
  so no attacker text reaches `warnings`; `raw` keeps the key.
- Values the event has no field for (durations, hassh, ja4, terminal size, telnet options,
  tty log names) are dropped; `raw` keeps them. cowrie 2.x `duration` (seconds) and 3.x
  `duration_ms` are therefore both accepted and neither is read.
- The record's `sensor` is configuration an attacker on the sensor host could influence;
  the event's sensor is always the authenticated `ctx.sensor`.
- An unusable address, port or hash is dropped with a warning; only a record that is not
  a cowrie record at all is rejected.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import build_event, parse_hash, parse_ip, parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind, Outcome

Record = dict[Any, Any]
Extract = Callable[[Record, list[str]], dict[str, Any]]

# Families whose dst_ip/dst_port name the attacker's forward target rather than the honeypot.
_FORWARD_FAMILIES = ("direct-tcpip.", "tunnelproxy-tcpip.", "reversedns.forward")
_PLUGIN_FAMILIES = (
    "proxy.", "reversedns.", "virustotal.", "greynoise.", "urlhaus.", "malwarebazaar.", "abuseipdb.",
)
_PORT_PROTOCOLS = {22: "ssh", 2222: "ssh", 23: "telnet", 2223: "telnet"}
# cowrie's key fingerprint (colon-separated MD5 hex) or OpenSSH's SHA256:base64 form.
_FINGERPRINT = re.compile(r"(?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}|SHA256:[A-Za-z0-9+/]{43}=?")
_inet_pton, _AF_INET = socket.inet_pton, socket.AF_INET


def _text(record: Record, key: str, notes: list[str]) -> Any:
    """The record's value for a text field, left for make_event to clean; None for containers."""
    value = record.get(key)
    return value if value.__class__ is str else get.text(value, key, notes)


def _address(record: Record, key: str, notes: list[str]) -> str | None:
    value = record.get(key)
    if value.__class__ is str:  # parse_ip's own fast path, without its two calls: dotted-quad is canonical
        try:
            _inet_pton(_AF_INET, value)
            return value  # type: ignore[no-any-return]
        except (OSError, ValueError):
            pass
    return get.address(value, key, notes)


def _port(record: Record, key: str, notes: list[str]) -> int | None:
    value = record.get(key)
    if value.__class__ is int and 0 <= value <= 65535:  # the common case, without two calls
        return value  # type: ignore[no-any-return]
    return get.port(value, key, notes)


def _sha256(record: Record, notes: list[str]) -> str | None:
    value = record.get("shasum")
    digest = parse_hash(value, 64)
    if digest is None and value is not None:
        notes.append("shasum is not a SHA-256 digest; dropped")
    return digest


def _unwrap_bytes_repr(value: Any) -> Any:
    """cowrie 2.x logged some banners as a Python bytes repr, "b'SSH-2.0-…'": keep the inside."""
    is_repr = isinstance(value, str) and len(value) >= 3 and value.startswith(("b'", 'b"'))
    return value[2:-1] if is_repr and value[-1] == value[1] else value


def _client_version(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"client_version": _unwrap_bytes_repr(_text(record, "version", notes))}


def _username(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"username": _text(record, "username", notes)}


def _login(record: Record, notes: list[str]) -> dict[str, Any]:
    fields = _username(record, notes)
    fingerprint = record.get("fingerprint")
    if record.get("password") is None and fingerprint is not None:
        if isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint):
            notes.append(f"public-key login, key fingerprint {fingerprint}; no password")
        else:
            notes.append("public-key login; no password")
    else:
        fields["password"] = _text(record, "password", notes)
    return fields


def _command(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"command": _text(record, "input", notes)}


def _download(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"url": _text(record, "url", notes), "sha256": _sha256(record, notes)}


def _failed_download(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"url": _text(record, "url", notes)}


def _exploit(record: Record, notes: list[str]) -> dict[str, Any]:
    return {"signature": _text(record, "cve", notes)}


def _exploit_success(record: Record, notes: list[str]) -> dict[str, Any]:
    return {
        "signature": _text(record, "cve", notes),
        "username": _text(record, "username", notes),
        "command": _text(record, "attempted_command", notes),
    }


def _forward_target(record: Record, notes: list[str]) -> dict[str, Any]:
    """The requested forward target as tcp://host:port; the host may be a name, not an address."""
    host = record.get("dst_ip")
    if not isinstance(host, str) or not host:
        return {}
    address = parse_ip(host)
    if address is not None:
        host = f"[{address}]" if ":" in address else address
    port = _port(record, "dst_port", notes)
    return {"url": f"tcp://{host}" if port is None else f"tcp://{host}:{port}"}


_EVENTS: dict[str, tuple[Kind, Outcome, Extract | None]] = {
    "session.connect": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "session.closed": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "client.version": (Kind.CONNECTION, Outcome.UNKNOWN, _client_version),
    "client.kex": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "client.var": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "client.size": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "client.fingerprint": (Kind.CONNECTION, Outcome.UNKNOWN, _username),
    "client.malformed_packet": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "login.success": (Kind.LOGIN_ATTEMPT, Outcome.SUCCESS, _login),
    "login.failed": (Kind.LOGIN_ATTEMPT, Outcome.FAILURE, _login),
    "command.input": (Kind.COMMAND, Outcome.SUCCESS, _command),
    "command.success": (Kind.COMMAND, Outcome.SUCCESS, _command),
    "command.failed": (Kind.COMMAND, Outcome.FAILURE, _command),
    "command.chpasswd": (Kind.COMMAND, Outcome.UNKNOWN, _username),
    "session.input": (Kind.COMMAND, Outcome.UNKNOWN, _command),
    "session.file_download": (Kind.FILE_DOWNLOAD, Outcome.SUCCESS, _download),
    "session.file_download.failed": (Kind.FILE_DOWNLOAD, Outcome.FAILURE, _failed_download),
    "session.file_upload": (Kind.FILE_UPLOAD, Outcome.SUCCESS, _download),
    "session.params": (Kind.OTHER, Outcome.UNKNOWN, None),
    "log.open": (Kind.OTHER, Outcome.UNKNOWN, None),
    "log.closed": (Kind.OTHER, Outcome.UNKNOWN, None),
    "telnet.option": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "telnet.error": (Kind.CONNECTION, Outcome.UNKNOWN, None),
    "telnet.exploit_attempt": (Kind.EXPLOIT, Outcome.UNKNOWN, _exploit),
    "telnet.exploit_success": (Kind.EXPLOIT, Outcome.SUCCESS, _exploit_success),
    "tunnelproxy-tcpip.data": (Kind.OTHER, Outcome.UNKNOWN, None),
}
_FORWARD_EVENT = (Kind.OTHER, Outcome.UNKNOWN, _forward_target)
_OTHER_EVENT = (Kind.OTHER, Outcome.UNKNOWN, None)


def _classify(name: str, notes: list[str]) -> tuple[Kind, Outcome, Extract | None]:
    if name in _EVENTS:
        return _EVENTS[name]
    if name.startswith("direct-tcpip."):
        return _FORWARD_EVENT
    if name.startswith(_PLUGIN_FAMILIES):
        return _OTHER_EVENT
    notes.append("unknown cowrie eventid; kept as kind other")  # `action` names it
    return _OTHER_EVENT


def _protocol(record: Record, name: str, honeypot_port: int | None) -> str | None:
    value = record.get("protocol")
    if isinstance(value, str) and value.strip():
        return value.strip().lower()
    if name.startswith("telnet."):
        return "telnet"
    if name.startswith(("direct-tcpip.", "tunnelproxy-tcpip.")):
        return "ssh"  # port forwarding exists only in SSH
    return _PORT_PROTOCOLS.get(honeypot_port)


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    eventid = record.get("eventid")
    if eventid is None:
        raise RecordRejected("missing eventid")
    if not isinstance(eventid, str) or not eventid.startswith("cowrie."):
        raise RecordRejected("not a cowrie record")
    name = eventid[7:]  # after "cowrie."
    notes: list[str] = []
    kind, outcome, extract = _EVENTS.get(name) or _classify(name, notes)

    fields: dict[str, Any] = {
        "action": eventid,
        "transport": "tcp",
        "session": _text(record, "session", notes),
        "src_ip": _address(record, "src_ip", notes),
        "src_port": _port(record, "src_port", notes),
    }
    honeypot_port = None
    if not name.startswith(_FORWARD_FAMILIES):
        fields["dst_ip"] = _address(record, "dst_ip", notes)
        fields["dst_port"] = honeypot_port = _port(record, "dst_port", notes)
    fields["protocol"] = _protocol(record, name, honeypot_port)
    if extract is not None:
        fields.update(extract(record, notes))
    ts = parse_timestamp(record.get("timestamp"), ctx.timezone)
    return [build_event(ctx, kind, ts, outcome, notes, fields)]


def detect(record: Any) -> bool:
    """A cowrie log record: an object whose eventid is a cowrie event id.

    A cowrie record re-shipped by T-Pot (with `type` and T-Pot's `dest_*`/`t-pot_*` fields) is
    left to the `tpot` format, which reads the renamed fields."""
    if not isinstance(record, dict):
        return False
    eventid = record.get("eventid")
    if "type" in record and ("dest_ip" in record or "dest_port" in record or "t-pot_ip_ext" in record):
        return False
    return isinstance(eventid, str) and eventid.startswith("cowrie.")


ADAPTER = Adapter(
    name="cowrie",
    description="cowrie JSON log records (cowrie.json, one object per line), cowrie 2.x and 3.x",
    adapt=adapt,
    detect=detect,
    priority=10,
)
