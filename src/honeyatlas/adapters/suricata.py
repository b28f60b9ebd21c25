"""The `suricata` format: one record of Suricata's EVE JSON log (`eve.json`) becomes one event.

    event_type                          kind           outcome             fields besides the common ones
    alert                               ids_alert      failure if alert.action is "blocked", else unknown
                                                                           signature, severity (alert.severity 1-4)
    http                                web_request    unknown             url, user_agent
    http2                               web_request    unknown
    ssh                                 connection     unknown             client_version
    fileinfo                            file_download  success (state CLOSED), failure (TRUNCATED, ERROR), else unknown
                                                                           sha256, md5 when hashed, url when over HTTP
    flow, netflow                       connection     unknown
    tls and other application-layer transactions (smb, ftp, ftp_data, rdp, rfb, sip, snmp, smtp, krb5,
    nfs, tftp, dcerpc, mqtt, modbus, dnp3, enip, ike, quic, ldap, pgsql, telnet)
                                        connection     unknown             protocol
    dns, dhcp, mdns, anomaly, drop      other          unknown (drop: failure)
    stats                               not an event: RecordIgnored (engine counters, no attacker)
    anything else                       other          unknown             plus a warning: unknown event_type

Common fields: `ts` from `timestamp` (Suricata writes numeric offsets such as +0100),
`src_ip`/`src_port`, `dst_ip`/`dst_port` from `dest_ip`/`dest_port`, `transport` from
`proto` lowercased ("TCP" -> tcp, "IPv6-ICMP" -> icmp), `protocol` from `app_proto`
("failed" and "unknown" are dropped) or else the event type of an application-layer record,
`session` from `flow_id` (it ties the alert, http, fileinfo and flow records of one flow),
`action` "suricata.<event_type>". `url`, `user_agent` and `client_version` are filled from an
embedded `http` or `ssh` object whatever the event type, so an alert on an HTTP request
carries the request's URL too.

Decisions worth knowing:
- Direction: when an alert's rule uses `target:`, Suricata adds `alert.source` and
  `alert.target`; they name attacker and victim, so they become src and dst even where the
  packet went the other way. Otherwise src/dst are the record's own (packet or flow) direction.
- Outcome of an alert: "blocked" (IPS drop or reject) is a failure for the attacker;
  "allowed" only means the packet passed the sensor, so the outcome stays unknown.
- `url` is "http://" + `http.hostname` (+ ":" + `http.http_port`) + `http.url`; an absolute
  `http.url` (proxy request) or one not starting with "/" (CONNECT) is kept as it is.
- `client_version` is the client's banner as cowrie writes it: "SSH-<proto_version>-<software_version>".
- fileinfo is always file_download: EVE does not say which end asked for the file. For a
  download over HTTP the record's src is the server that sent the file.
- flow records are high volume; they are accepted, but operators should drop them at the
  sensor (`eve-log.types` without `flow`) unless they want every flow on the map.
- `alert.signature` missing: the signature becomes "sid:<signature_id>" when there is one.
- The sensor is always the authenticated `ctx.sensor`; `host` and `in_iface` are dropped.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_port, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

Record = dict[Any, Any]

_APP_LAYER = frozenset({
    "tls", "smb", "ftp", "ftp_data", "rdp", "rfb", "sip", "snmp", "smtp", "krb5", "nfs", "tftp",
    "dcerpc", "mqtt", "modbus", "dnp3", "enip", "ike", "quic", "ldap", "pgsql", "telnet",
})
_KINDS: dict[str, Kind] = {
    "alert": Kind.IDS_ALERT,
    "http": Kind.WEB_REQUEST,
    "http2": Kind.WEB_REQUEST,
    "ssh": Kind.CONNECTION,
    "fileinfo": Kind.FILE_DOWNLOAD,
    "flow": Kind.CONNECTION,
    "netflow": Kind.CONNECTION,
    "dns": Kind.OTHER,
    "dhcp": Kind.OTHER,
    "mdns": Kind.OTHER,
    "anomaly": Kind.OTHER,
    "drop": Kind.OTHER,
    **dict.fromkeys(_APP_LAYER, Kind.CONNECTION),
}
_NAMED_BY_TYPE = _APP_LAYER | {"http", "http2", "ssh", "dns"}  # the event type is the protocol
_NOT_PROTOCOLS = ("failed", "unknown")
_FILE_STATES = {"CLOSED": Outcome.SUCCESS, "TRUNCATED": Outcome.FAILURE, "ERROR": Outcome.FAILURE}
_MAX_FLOW_ID = 2**64


def _object(record: Record, key: str) -> Record:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _endpoints(record: Record, notes: list[str]) -> dict[str, Any]:
    alert = _object(record, "alert")
    source, target = _object(alert, "source"), _object(alert, "target")
    if source.get("ip") is not None and target.get("ip") is not None:
        return {
            "src_ip": get.address(source.get("ip"), "alert.source.ip", notes),
            "src_port": get.port(source.get("port"), "alert.source.port", notes),
            "dst_ip": get.address(target.get("ip"), "alert.target.ip", notes),
            "dst_port": get.port(target.get("port"), "alert.target.port", notes),
        }
    return {
        "src_ip": get.address(record.get("src_ip"), "src_ip", notes),
        "src_port": get.port(record.get("src_port"), "src_port", notes),
        "dst_ip": get.address(record.get("dest_ip"), "dest_ip", notes),
        "dst_port": get.port(record.get("dest_port"), "dest_port", notes),
    }


def http_url(http: Record) -> str | None:
    """The request URL from an EVE `http` object: host, optional port and path."""
    path, host = http.get("url"), http.get("hostname")
    if not isinstance(path, str):
        path = None
    if path is not None and (not path.startswith("/") or path[:8].lower().startswith(("http://", "https://"))):
        return path
    if not isinstance(host, str) or not host:
        return path
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    port = parse_port(http.get("http_port"))
    authority = host if port is None else f"{host}:{port}"
    return f"http://{authority}{path or ''}"


def _ssh_banner(ssh: Record, notes: list[str]) -> Any:
    client = _object(ssh, "client")
    software = get.text(client.get("software_version"), "ssh.client.software_version", notes)
    proto = client.get("proto_version")
    if isinstance(software, str) and isinstance(proto, str):
        return f"SSH-{proto}-{software}"
    return software


def _embedded(record: Record, notes: list[str]) -> dict[str, Any]:
    """url, user_agent and client_version from the http and ssh objects any record may carry."""
    fields: dict[str, Any] = {}
    http = _object(record, "http")
    if http:
        fields["url"] = http_url(http)
        fields["user_agent"] = get.text(http.get("http_user_agent"), "http.http_user_agent", notes)
    ssh = _object(record, "ssh")
    if ssh:
        fields["client_version"] = _ssh_banner(ssh, notes)
    return fields


def _alert(record: Record, notes: list[str]) -> tuple[Outcome, dict[str, Any]]:
    alert = _object(record, "alert")
    return get.ids_outcome(alert.get("action")), {
        "signature": get.signature(alert.get("signature"), alert.get("signature_id"), "alert.signature", notes),
        "severity": get.severity(alert.get("severity"), "alert.severity", notes),
    }


def _fileinfo(record: Record, notes: list[str]) -> tuple[Outcome, dict[str, Any]]:
    info = _object(record, "fileinfo")
    state = info.get("state")
    outcome = _FILE_STATES.get(state, Outcome.UNKNOWN) if isinstance(state, str) else Outcome.UNKNOWN
    return outcome, {
        "sha256": get.digest(info.get("sha256"), "fileinfo.sha256", 64, notes),
        "md5": get.digest(info.get("md5"), "fileinfo.md5", 32, notes),
    }


def _protocol(record: Record, event_type: str) -> str | None:
    protocol = get.lowercase_name(record.get("app_proto"))
    if protocol is not None and protocol not in _NOT_PROTOCOLS:
        return protocol
    return event_type if event_type in _NAMED_BY_TYPE else None


def _session(record: Record) -> str | None:
    flow_id = record.get("flow_id")
    if isinstance(flow_id, int) and not isinstance(flow_id, bool) and 0 <= flow_id < _MAX_FLOW_ID:
        return str(flow_id)
    return None


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    event_type = record.get("event_type")
    if event_type is None:
        raise RecordRejected("missing event_type")
    if not isinstance(event_type, str) or not event_type:
        raise RecordRejected("not a Suricata EVE record")
    if event_type == "stats":
        raise RecordIgnored("suricata stats record: engine counters, not attacker activity")
    notes: list[str] = []
    kind = _KINDS.get(event_type)
    if kind is None:
        kind = Kind.OTHER
        notes.append("unknown suricata event_type; kept as kind other")  # `action` names it

    fields: dict[str, Any] = {
        "action": f"suricata.{event_type}",
        "transport": get.transport(record.get("proto")),
        "protocol": _protocol(record, event_type),
        "session": _session(record),
        **_endpoints(record, notes),
        **_embedded(record, notes),
    }
    outcome = Outcome.UNKNOWN
    if event_type == "alert":
        outcome, extra = _alert(record, notes)
        fields.update(extra)
    elif event_type == "fileinfo":
        outcome, extra = _fileinfo(record, notes)
        fields.update(extra)
    elif event_type == "drop":
        outcome = Outcome.FAILURE
    ts = parse_timestamp(record.get("timestamp"), ctx.timezone)
    return [make_event(ctx, kind, ts=ts, outcome=outcome, warnings=notes, **fields)]


def detect(record: Any) -> bool:
    """EVE: `event_type` and `timestamp`, a flow id or protocol, and no T-Pot `type` label."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("event_type"), str)
        and "timestamp" in record
        and "type" not in record
        and ("flow_id" in record or "proto" in record or record.get("event_type") == "stats")
    )


ADAPTER = Adapter(
    name="suricata",
    description="Suricata EVE JSON records (eve.json, one object per line): alerts, http, ssh, fileinfo, flows",
    adapt=adapt,
    detect=detect,
    priority=30,
)
