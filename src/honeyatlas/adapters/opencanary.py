"""The `opencanary` format: one OpenCanary JSON log line (file, syslog or hpfeeds) becomes one event.

OpenCanary writes `{dst_host, dst_port, src_host, src_port, logtype, logdata{…}, node_id,
utc_time, local_time, local_time_adjusted [, honeycred]}`; `logtype` says what happened and
`logdata` carries the details, mostly under UPPERCASE keys (newer modules use other cases:
mssql `UserName`, mongodb `username`, vnc `VNC Password`; keys are looked up without case).

    logtype        what                       kind           protocol/transport  fields
    1000-1006      boot, msg, debug, error, ping, config save, example: OpenCanary's own
                   messages, not attacks -> RecordIgnored("opencanary <code> <name>: ...")
    2000           ftp login                  login_attempt  ftp/tcp     username, password
    2001           ftp auth initiated         connection     ftp/tcp     username
    3000           http GET                   web_request    http/tcp    url (PATH), user_agent
    3001           http POST login            login_attempt  http/tcp    url, user_agent, username, password
    3002, 3003     http other method, redirect web_request   http/tcp    url, user_agent
    4000           ssh new connection         connection     ssh/tcp
    4001           ssh remote version         connection     ssh/tcp     client_version (REMOTEVERSION)
    4002           ssh login                  login_attempt  ssh/tcp     username, password, client_version
    5000           smb file open              other          smb/tcp     username (USER), url (FILENAME)
    5001           port SYN                   scan           -/tcp
    5002-5005      nmap OS, NULL, XMAS, FIN   scan           -/tcp       signature "nmap … scan"
    6001           telnet login               login_attempt  telnet/tcp  username, password
    6002           telnet connection          connection     telnet/tcp
    7001           http proxy login           login_attempt  http/tcp    username, password
    8001           mysql login                login_attempt  mysql/tcp   username (password: see below)
    9001           mssql SQL auth             login_attempt  mssql/tcp   username, password
    9002           mssql Windows auth         login_attempt  mssql/tcp   username (NTLM: no password)
    9003           mysql connection           connection     mysql/tcp
    10001          tftp request               file_upload (WRITE) / other (READ)  tftp/udp  url (FILENAME)
    11001          ntp monlist                scan           ntp/udp     signature "ntp monlist"
    12001          vnc login                  login_attempt  vnc/tcp     password only when OpenCanary cracked it
    13001          snmp request               scan           snmp/udp    command (OIDs), password (community)
    14001          rdp connection             connection     rdp/tcp     username (mstshash cookie)
    15001          sip request                scan           sip/udp     user_agent
    16001          git clone request          other          git/tcp     url git://HOST/REPO
    17001          redis command              command        redis/tcp   command "CMD ARGS"
    18001, 18002   tcpbanner connection       connection     -/tcp
    18003-18005    tcpbanner data received    command        -/tcp       command (DATA)
    19001          llmnr response to canary   other          llmnr/udp
    20001          mongodb                    login_attempt  mongodb/tcp username; logdata `action`
                   mongodb.command -> command, mongodb.connection/.disconnect -> connection,
                   mongodb.error -> other
    99000-99009    user modules               other
    anything else                             other          plus a warning: unknown logtype

Common: `action` is "opencanary.<logtype>"; `src_ip`/`src_port` from src_host/src_port,
`dst_ip`/`dst_port` from dst_host/dst_port; OpenCanary's "no address" markers (`""`, `-1`)
become None without a warning.

Decisions worth knowing:
- Time: `utc_time` is parsed as UTC whatever `ctx.timezone` says. OpenCanary fills it with
  `datetime.utcnow()` and prints it without a zone; the configured zone is for honeypots that
  write local time, and applying it here would shift every OpenCanary event. (`local_time` is
  utcnow() too; `local_time_adjusted` is the only local one and is not read.)
- Every login outcome is failure: OpenCanary never lets anyone in.
- The mysql PASSWORD (8001) is the client's scrambled SHA-1 response, not a password: it is
  dropped with a warning so credential statistics never count hashes as passwords; the
  username is kept. The vnc `VNC Client Response` (12001) is a DES response treated the same
  way, except that OpenCanary tries a few common passwords against it: when it found one,
  `VNC Password` holds that plaintext and it is kept.
- ssh 4000 `SESSION` is a per-process counter that restarts at 0, not a session id: not used.
- `node_id` is configuration an attacker on the sensor could influence; the event's sensor
  is always `ctx.sensor`. `honeycred` and other logdata keys are kept only in `raw`.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, NamedTuple

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.fields import make_event, parse_ip, parse_port, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

LogData = dict[str, Any]
Extract = Callable[[LogData, list[str]], dict[str, Any]]

_OWN_MESSAGES = {
    1000: "boot", 1001: "msg", 1002: "debug", 1003: "error", 1004: "ping", 1005: "config save", 1006: "example",
}
_VNC_NOT_CRACKED = "<Password was not in the common list>"


class _Spec(NamedTuple):
    kind: Kind
    protocol: str | None
    transport: str
    extract: Extract | None = None
    outcome: Outcome = Outcome.UNKNOWN


def _value(logdata: LogData, *names: str) -> Any:
    """The first of `names` present in logdata, matched without case; containers count as absent."""
    for name in names:
        if name in logdata:
            value = logdata[name]
        else:
            lowered = name.lower()
            value = next((v for k, v in logdata.items() if isinstance(k, str) and k.lower() == lowered), None)
        if value is not None and not isinstance(value, (dict, list)):
            return value
    return None


def _username(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"username": _value(logdata, "USERNAME", "USER")}


def _login(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"username": _value(logdata, "USERNAME"), "password": _value(logdata, "PASSWORD")}


def _http(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"url": _value(logdata, "PATH"), "user_agent": _value(logdata, "USERAGENT")}


def _http_login(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {**_http(logdata, notes), **_login(logdata, notes)}


def _ssh_version(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"client_version": _value(logdata, "REMOTEVERSION")}


def _ssh_login(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    fields = {**_ssh_version(logdata, notes), **_login(logdata, notes)}
    if fields["password"] is None and _value(logdata, "KEY", "PUBLICKEY") is not None:
        notes.append("public-key login; no password")
    return fields


def _scrambled_login(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    if _value(logdata, "PASSWORD") not in (None, ""):
        notes.append("scrambled mysql response; password not kept")
    return {"username": _value(logdata, "USERNAME")}


def _mssql_windows(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"username": _value(logdata, "USERNAME") or None}


def _smb(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"username": _value(logdata, "USER"), "url": _value(logdata, "FILENAME")}


def _tftp(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"url": _value(logdata, "FILENAME")}
    if str(_value(logdata, "OPCODE")).upper() == "WRITE":
        fields["kind"] = Kind.FILE_UPLOAD
    return fields


def _vnc(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    cracked = _value(logdata, "VNC Password")
    if cracked is not None and cracked != _VNC_NOT_CRACKED:
        return {"password": cracked}
    notes.append("vnc DES response; password not recovered")
    return {}


def _snmp(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    requests = logdata.get("REQUESTS")
    oids = " ".join(str(oid) for oid in requests[:64]) if isinstance(requests, list) else _value(logdata, "REQUESTS")
    return {"command": oids or None, "password": _value(logdata, "COMMUNITY_STRING")}


def _sip(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    headers = logdata.get("HEADERS")
    if not isinstance(headers, dict):
        return {}
    agent = _value(headers, "user-agent")
    if agent is None:  # twisted keeps each header as a list of values
        values = next((v for k, v in headers.items() if str(k).lower() == "user-agent"), None)
        agent = values[0] if isinstance(values, list) and values else None
    return {"user_agent": agent}


def _git(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    host, repo = _value(logdata, "HOST"), _value(logdata, "REPO")
    if host is None and repo is None:
        return {}
    return {"url": f"git://{host or ''}/{str(repo or '').lstrip('/')}"}


def _redis(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    command = " ".join(str(part) for part in (_value(logdata, "CMD"), _value(logdata, "ARGS")) if part)
    return {"command": command or None}


def _banner_data(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    return {"command": _value(logdata, "DATA")}


_MONGODB_KINDS = {
    "mongodb.connection": Kind.CONNECTION,
    "mongodb.disconnect": Kind.CONNECTION,
    "mongodb.command": Kind.COMMAND,
    "mongodb.error": Kind.OTHER,
}


def _mongodb(logdata: LogData, notes: list[str]) -> dict[str, Any]:
    kind = _MONGODB_KINDS.get(str(logdata.get("action")))
    if kind is Kind.COMMAND:
        return {"kind": kind, "outcome": Outcome.UNKNOWN, "command": _value(logdata, "command")}
    if kind is not None:
        return {"kind": kind, "outcome": Outcome.UNKNOWN}
    return _login(logdata, notes)


def _signature(text: str) -> Extract:
    return lambda logdata, notes: {"signature": text}


_LOGIN = Kind.LOGIN_ATTEMPT
_FAILED = Outcome.FAILURE
_CODES: dict[int, _Spec] = {
    2000: _Spec(_LOGIN, "ftp", "tcp", _login, _FAILED),
    2001: _Spec(Kind.CONNECTION, "ftp", "tcp", _username),
    3000: _Spec(Kind.WEB_REQUEST, "http", "tcp", _http),
    3001: _Spec(_LOGIN, "http", "tcp", _http_login, _FAILED),
    3002: _Spec(Kind.WEB_REQUEST, "http", "tcp", _http),
    3003: _Spec(Kind.WEB_REQUEST, "http", "tcp", _http),
    4000: _Spec(Kind.CONNECTION, "ssh", "tcp"),
    4001: _Spec(Kind.CONNECTION, "ssh", "tcp", _ssh_version),
    4002: _Spec(_LOGIN, "ssh", "tcp", _ssh_login, _FAILED),
    5000: _Spec(Kind.OTHER, "smb", "tcp", _smb),
    5001: _Spec(Kind.SCAN, None, "tcp"),
    5002: _Spec(Kind.SCAN, None, "tcp", _signature("nmap OS fingerprint scan")),
    5003: _Spec(Kind.SCAN, None, "tcp", _signature("nmap NULL scan")),
    5004: _Spec(Kind.SCAN, None, "tcp", _signature("nmap XMAS scan")),
    5005: _Spec(Kind.SCAN, None, "tcp", _signature("nmap FIN scan")),
    6001: _Spec(_LOGIN, "telnet", "tcp", _login, _FAILED),
    6002: _Spec(Kind.CONNECTION, "telnet", "tcp"),
    7001: _Spec(_LOGIN, "http", "tcp", _login, _FAILED),
    8001: _Spec(_LOGIN, "mysql", "tcp", _scrambled_login, _FAILED),
    9001: _Spec(_LOGIN, "mssql", "tcp", _login, _FAILED),
    9002: _Spec(_LOGIN, "mssql", "tcp", _mssql_windows, _FAILED),
    9003: _Spec(Kind.CONNECTION, "mysql", "tcp"),
    10001: _Spec(Kind.OTHER, "tftp", "udp", _tftp),
    11001: _Spec(Kind.SCAN, "ntp", "udp", _signature("ntp monlist")),
    12001: _Spec(_LOGIN, "vnc", "tcp", _vnc, _FAILED),
    13001: _Spec(Kind.SCAN, "snmp", "udp", _snmp),
    14001: _Spec(Kind.CONNECTION, "rdp", "tcp", _username),
    15001: _Spec(Kind.SCAN, "sip", "udp", _sip),
    16001: _Spec(Kind.OTHER, "git", "tcp", _git),
    17001: _Spec(Kind.COMMAND, "redis", "tcp", _redis),
    18001: _Spec(Kind.CONNECTION, None, "tcp"),
    18002: _Spec(Kind.CONNECTION, None, "tcp"),
    18003: _Spec(Kind.COMMAND, None, "tcp", _banner_data),
    18004: _Spec(Kind.COMMAND, None, "tcp", _banner_data),
    18005: _Spec(Kind.COMMAND, None, "tcp", _banner_data),
    19001: _Spec(Kind.OTHER, "llmnr", "udp"),
    20001: _Spec(_LOGIN, "mongodb", "tcp", _mongodb, _FAILED),
    **{code: _Spec(Kind.OTHER, None, "tcp") for code in range(99000, 99010)},
}
_UNKNOWN = _Spec(Kind.OTHER, None, "tcp")


def _logtype(record: dict[Any, Any]) -> int:
    value = record.get("logtype")
    if value is None:
        raise RecordRejected("missing logtype")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
        raise RecordRejected("logtype is not an OpenCanary log type number")
    return value


def _endpoint(record: dict[Any, Any], host_key: str, port_key: str, notes: list[str]) -> tuple[str | None, int | None]:
    host, port = record.get(host_key), record.get(port_key)
    address = parse_ip(host)
    if address is None and host not in (None, ""):
        notes.append(f"{host_key} is not an IP address; dropped")
    number = parse_port(port)
    if number is None and port not in (None, -1, "-1", ""):
        notes.append(f"{port_key} is not a port number; dropped")
    return address, number


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    code = _logtype(record)
    if code in _OWN_MESSAGES:
        raise RecordIgnored(f"opencanary {code} {_OWN_MESSAGES[code]}: OpenCanary's own message, not attacker activity")
    notes: list[str] = []
    spec = _CODES.get(code)
    if spec is None:
        spec = _UNKNOWN
        notes.append("unknown opencanary logtype; kept as kind other")  # `action` names it
    logdata = record.get("logdata")
    if not isinstance(logdata, dict):
        if logdata is not None:
            notes.append("logdata is not an object; ignored")
        logdata = {}

    src_ip, src_port = _endpoint(record, "src_host", "src_port", notes)
    dst_ip, dst_port = _endpoint(record, "dst_host", "dst_port", notes)
    fields: dict[str, Any] = spec.extract(logdata, notes) if spec.extract is not None else {}
    kind = fields.pop("kind", spec.kind)
    outcome = fields.pop("outcome", spec.outcome)
    ts = parse_timestamp(record.get("utc_time"), UTC)
    return [
        make_event(
            ctx, kind, ts=ts, outcome=outcome, warnings=notes,
            action=f"opencanary.{code}", transport=spec.transport, protocol=spec.protocol,
            src_ip=src_ip, src_port=src_port, dst_ip=dst_ip, dst_port=dst_port, **fields,
        )
    ]


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "logtype" in record and "utc_time" in record and (
        "node_id" in record or "logdata" in record
    )


ADAPTER = Adapter(
    name="opencanary",
    description="OpenCanary JSON log lines (file, syslog or the hpfeeds channel), every logtype of 0.9.x",
    adapt=adapt,
    detect=detect,
    priority=20,
)
