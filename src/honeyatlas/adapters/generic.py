"""The `tpot` and `ecs` formats: records some other pipeline already normalized, one event each.

Both are read the same way: each event field has a list of paths, the first present wins,
and a path may be nested (`{"source": {"ip": …}}`), flattened (`{"source.ip": …}`) or both.

T-Pot (`tpot`): what T-Pot's logstash writes for every honeypot it runs (formats.md §2.8).

    record path (first present)                  event field
    type ("Cowrie", "Dionaea", "Suricata", …)   honeypot, lowercased
    @timestamp, timestamp                        ts
    src_ip, src_port                             src_ip, src_port
    dest_ip | dst_ip | t-pot_ip_ext              dst_ip (T-Pot's dest_ip is often its internal address)
    dest_port | dst_port                         dst_port
    transport, proto, connection.transport,
      attack_connection.protocol (honeytrap)     transport, lowercased; "tcp" when absent and the
                                                 protocol runs only over TCP (ssh, http, smb, …)
    protocol, app_proto, connection.protocol     protocol, lowercased; dionaea's service names
                                                 become protocol names (smbd -> smb, mysqld -> mysql)
    eventid, else "<type>.<event_type>"          action (cowrie "cowrie.login.failed", suricata "suricata.alert")
    session                                      session
    username, password                           username, password
    input                                        command
    url                                          url
    shasum | sha256, md5                         sha256, md5
    alert.signature, alert.severity              signature, severity
    user_agent                                   user_agent

ECS (`ecs`): Elastic Common Schema documents (formats.md §3.2), nested or flattened.

    record path (first present)                  event field
    observer.product                             honeypot, lowercased (else the sensor's type)
    @timestamp                                   ts
    source.ip | client.ip, source.port | client.port            src_ip, src_port
    destination.ip | server.ip, destination.port | server.port  dst_ip, dst_port
    network.transport, network.protocol | tls.version_protocol  transport, protocol (lowercased;
                                                 transport "tcp" inferred as for T-Pot)
    event.action | event.dataset                 action (filebeat's dataset "suricata.alert" is our action)
    event.outcome (success, failure)             outcome
    honeypot.session_id                          session
    user.name, honeypot.password                 username, password (ECS has no password field)
    process.command_line | honeypot.command      command
    url.full | url.original | honeypot.url       url
    file.hash.sha256 | honeypot.file_sha256, file.hash.md5      sha256, md5
    rule.name | honeypot.signature | rule.id     signature
    honeypot.severity | event.severity (1-4)     severity
    user_agent.original                          user_agent

Kinds. ECS first looks at `event.category` (a word or a list), in this order:
intrusion_detection -> ids_alert, authentication -> login_attempt, process -> command,
file -> file_download (file_upload when event.action says "upload"), web -> web_request;
then `event.kind` alert -> ids_alert (Security Onion files Suricata alerts under category
network only). Every other ECS record (network, session, …) and every T-Pot record is
inferred from the fields found, first rule wins; a bare network connection ends as
connection:

    a signature                           ids_alert
    a username or a password              login_attempt
    a command                             command
    a sha256 or md5, or an action that    file_download (file_upload when the action says "upload")
      says "download" or "upload"
    a url                                 web_request
    anything else                         connection

T-Pot outcome: the action's last word ("cowrie.login.success" / ".failed") or a `status`
field saying success / failed; a file_download with a hash is a success; else unknown.

Decisions worth knowing:
- Not attacker activity, so ignored (counted, not stored): T-Pot records with event_type
  "stats" (Suricata counters) and ECS documents whose event.kind is metric, state or
  pipeline_error.
- A record with no address, credential, command, URL, hash or signature is rejected: there
  is nothing to show.
- These formats hold many honeypots' fields; only the common ones above are read, `raw`
  keeps the rest. GeoIP that T-Pot or Elastic already added (`geoip.*`, `source.geo.*`) is
  ignored: honeyatlas locates addresses itself, with one database for every source.
- `detect` is deliberately narrow (priority 200 and 210, after every specific format, as
  many formats have a `src_ip`): T-Pot needs `type` and either a `t-pot_*` field or
  `src_ip` with `@timestamp`, `dest_ip` or `dest_port` (an export without logstash's
  additions, such as a bare Heralding login, is still T-Pot's shape); ECS needs
  `@timestamp`, no `src_ip`, and one of ecs.version, event.category, event.kind or source.ip.
- The sensor is always the authenticated `ctx.sensor`; T-Pot's `t-pot_hostname` and ECS's
  `observer.name` are dropped.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

Record = dict[Any, Any]
Notes = list[str]
Paths = dict[str, tuple[str, ...]]  # event field -> record paths, the first present wins

TPOT_PATHS: Paths = {
    "ts": ("@timestamp", "timestamp"),
    "src_ip": ("src_ip",),
    "src_port": ("src_port",),
    "dst_ip": ("dest_ip", "dst_ip", "t-pot_ip_ext"),
    "dst_port": ("dest_port", "dst_port"),
    "transport": ("transport", "proto", "connection.transport", "attack_connection.protocol"),
    "protocol": ("protocol", "app_proto", "connection.protocol"),
    "session": ("session",),
    "username": ("username",),
    "password": ("password",),
    "command": ("input",),
    "url": ("url",),
    "sha256": ("shasum", "sha256"),
    "md5": ("md5",),
    "signature": ("alert.signature",),
    "severity": ("alert.severity",),
    "user_agent": ("user_agent",),
}
ECS_PATHS: Paths = {
    "ts": ("@timestamp",),
    "src_ip": ("source.ip", "client.ip"),
    "src_port": ("source.port", "client.port"),
    "dst_ip": ("destination.ip", "server.ip"),
    "dst_port": ("destination.port", "server.port"),
    "transport": ("network.transport",),
    "protocol": ("network.protocol", "tls.version_protocol"),
    "action": ("event.action", "event.dataset"),
    "session": ("honeypot.session_id",),
    "username": ("user.name",),
    "password": ("honeypot.password",),
    "command": ("process.command_line", "honeypot.command"),
    "url": ("url.full", "url.original", "honeypot.url"),
    "sha256": ("file.hash.sha256", "honeypot.file_sha256"),
    "md5": ("file.hash.md5",),
    "signature": ("rule.name", "honeypot.signature", "rule.id"),
    "severity": ("honeypot.severity", "event.severity"),
    "user_agent": ("user_agent.original",),
}

Reader = Callable[[Any, str, Notes], Any]
_READERS: dict[str, Reader] = {
    "ts": lambda value, path, notes: value,  # parsed in _read, with the context's zone
    "src_ip": get.address,
    "dst_ip": get.address,
    "src_port": get.port,
    "dst_port": get.port,
    "sha256": lambda value, path, notes: get.digest(value, path, 64, notes),
    "md5": lambda value, path, notes: get.digest(value, path, 32, notes),
    "severity": get.severity,
    "transport": lambda value, path, notes: get.transport(value),
    "protocol": lambda value, path, notes: _protocol(value),
}
# dionaea names its services after daemons; the event names protocols.
_SERVICE_PROTOCOLS = {
    "smbd": "smb", "httpd": "http", "ftpd": "ftp", "tftpd": "tftp", "mysqld": "mysql",
    "mssqld": "mssql", "sipd": "sip", "mqttd": "mqtt", "pptpd": "pptp", "upnpd": "upnp",
}
# Application protocols that only run over TCP: they tell the transport when a record omits it.
_TCP_PROTOCOLS = frozenset({
    "ssh", "telnet", "http", "https", "ftp", "smb", "mysql", "mssql", "postgresql", "redis", "rdp",
    "vnc", "smtp", "pop3", "imap", "ldap", "mongodb", "elasticsearch", "adb", "pptp", "mqtt",
})
# Fields that say something happened; an event needs at least one of them.
_SUBSTANCE = ("src_ip", "dst_ip", "username", "password", "command", "url", "sha256", "md5", "signature")
_SUCCESS_WORDS = frozenset({"success", "succeeded"})
_FAILURE_WORDS = frozenset({"failed", "failure", "fail"})
_ECS_CATEGORIES = (
    ("intrusion_detection", Kind.IDS_ALERT),
    ("authentication", Kind.LOGIN_ATTEMPT),
    ("process", Kind.COMMAND),
    ("file", Kind.FILE_DOWNLOAD),
    ("web", Kind.WEB_REQUEST),
)
_ECS_IGNORED_KINDS = frozenset({"metric", "state", "pipeline_error"})


def _protocol(value: Any) -> str | None:
    name = get.lowercase_name(value)
    return _SERVICE_PROTOCOLS.get(name, name) if name is not None else None


def _read(record: Record, paths: Paths, ctx: RecordContext, notes: Notes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field, candidates in paths.items():
        for path in candidates:
            value = get.lookup(record, path)
            if value is not None:
                fields[field] = _READERS.get(field, get.text)(value, path, notes)
                break
    if fields.get("transport") is None and fields.get("protocol") in _TCP_PROTOCOLS:
        fields["transport"] = "tcp"
    if "ts" in fields:
        ts = parse_timestamp(fields["ts"], ctx.timezone)
        if ts is None:
            notes.append("timestamp is not a time; dropped")
        fields["ts"] = ts
    return fields


def _action_says(fields: dict[str, Any], word: str) -> bool:
    action = fields.get("action")
    return isinstance(action, str) and word in action.lower()


def _file_kind(fields: dict[str, Any]) -> Kind:
    return Kind.FILE_UPLOAD if _action_says(fields, "upload") else Kind.FILE_DOWNLOAD


def _inferred_kind(fields: dict[str, Any]) -> Kind:
    if fields.get("signature") is not None:
        return Kind.IDS_ALERT
    if fields.get("username") is not None or fields.get("password") is not None:
        return Kind.LOGIN_ATTEMPT
    if fields.get("command") is not None:
        return Kind.COMMAND
    has_hash = fields.get("sha256") is not None or fields.get("md5") is not None
    if has_hash or _action_says(fields, "download") or _action_says(fields, "upload"):
        return _file_kind(fields)
    if fields.get("url") is not None:
        return Kind.WEB_REQUEST
    return Kind.CONNECTION


def _build(ctx: RecordContext, kind: Kind, outcome: Outcome, fields: dict[str, Any], notes: Notes) -> list[Event]:
    if all(fields.get(name) is None for name in _SUBSTANCE):
        raise RecordRejected("nothing usable: no address, credential, command, url, hash or signature")
    ts = fields.pop("ts", None)
    return [make_event(ctx, kind, ts=ts, outcome=outcome, warnings=notes, **fields)]


def _word_outcome(word: Any) -> Outcome:
    if isinstance(word, str):
        word = word.lower()
        if word in _SUCCESS_WORDS:
            return Outcome.SUCCESS
        if word in _FAILURE_WORDS:
            return Outcome.FAILURE
    return Outcome.UNKNOWN


def adapt_tpot(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    event_type = record.get("event_type")
    if event_type == "stats":
        raise RecordIgnored("t-pot stats record: sensor counters, not attacker activity")
    notes: Notes = []
    honeypot = get.lowercase_name(record.get("type"))
    if honeypot is None:
        notes.append("no honeypot type; the sensor's type used")
    fields = _read(record, TPOT_PATHS, ctx, notes)
    eventid = record.get("eventid")
    if eventid is not None:
        fields["action"] = get.text(eventid, "eventid", notes)
    elif isinstance(event_type, str) and honeypot is not None:
        fields["action"] = f"{honeypot}.{event_type}"
    kind = _inferred_kind(fields)
    action = fields.get("action")
    outcome = _word_outcome(action.rsplit(".", 1)[-1] if isinstance(action, str) else None)
    if outcome is Outcome.UNKNOWN:
        outcome = _word_outcome(record.get("status"))
    if outcome is Outcome.UNKNOWN and kind is Kind.FILE_DOWNLOAD and (fields.get("sha256") or fields.get("md5")):
        outcome = Outcome.SUCCESS  # the honeypot hashed what it received
    return _build(ctx, kind, outcome, {**fields, "honeypot": honeypot}, notes)


def _categories(value: Any) -> set[str]:
    words = value if isinstance(value, list) else [value]
    return {word.lower() for word in words[:16] if isinstance(word, str)}


def _ecs_kind(record: Record, fields: dict[str, Any]) -> Kind:
    categories = _categories(get.lookup(record, "event.category"))
    for category, kind in _ECS_CATEGORIES:
        if category in categories:
            return _file_kind(fields) if kind is Kind.FILE_DOWNLOAD else kind
    if get.lookup(record, "event.kind") == "alert":
        return Kind.IDS_ALERT
    return _inferred_kind(fields)


def adapt_ecs(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    event_kind = get.lookup(record, "event.kind")
    if isinstance(event_kind, str) and event_kind in _ECS_IGNORED_KINDS:
        raise RecordIgnored(f"ecs event.kind {event_kind}: not attacker activity")
    notes: Notes = []
    fields = _read(record, ECS_PATHS, ctx, notes)
    outcome_word = get.lookup(record, "event.outcome")
    outcome = Outcome(outcome_word) if outcome_word in ("success", "failure") else Outcome.UNKNOWN
    honeypot = get.lowercase_name(get.lookup(record, "observer.product"))
    return _build(ctx, _ecs_kind(record, fields), outcome, {**fields, "honeypot": honeypot}, notes)


# Beside src_ip, any one of these marks T-Pot: logstash's time or T-Pot's spelling of the destination.
_TPOT_COMPANIONS = ("@timestamp", "dest_ip", "dest_port")


def detect_tpot(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("type"), str)
        and (
            ("src_ip" in record and any(key in record for key in _TPOT_COMPANIONS))
            or any(isinstance(key, str) and key.startswith("t-pot_") for key in record)
        )
    )


def detect_ecs(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and "@timestamp" in record
        and "src_ip" not in record
        and any(
            get.lookup(record, path) is not None
            for path in ("ecs.version", "event.category", "event.kind", "source.ip")
        )
    )


TPOT = Adapter(
    name="tpot",
    description="T-Pot style normalized records (type, src_ip, dest_port, and the honeypot's own fields)",
    adapt=adapt_tpot,
    detect=detect_tpot,
    priority=200,
)
ECS = Adapter(
    name="ecs",
    description="Elastic Common Schema documents (source.ip, event.category, …), nested or flattened keys",
    adapt=adapt_ecs,
    detect=detect_ecs,
    priority=210,
)
