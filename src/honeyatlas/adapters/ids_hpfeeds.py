"""The `snort-hpfeeds` and `suricata-hpfeeds` formats: MHN's IDS alert channels, one alert per
hpfeeds message, each becoming one ids_alert event.

    channel           payload field                          event field
    snort.alerts      source_ip, source_port                 src_ip, src_port
    suricata.events   destination_ip, destination_port       dst_ip, dst_port
    (both)            proto | protocol (either spelling)     transport ("TCP" -> tcp, 17 -> udp)
                      signature                              signature ("sid:<signature_id>" when absent)
                      priority (suricata: or severity) 1-4   severity
                      action (suricata) "blocked"            outcome failure; otherwise unknown
                      timestamp, when a fork adds one        ts
                      sensor, classification, header, id, ttl, iplen, tos, eth*, tcp*, udp*,
                      signature_rev, ip_*                    dropped (`raw` keeps them)

`action` is "snort.alert" or "suricata.alert", the latter equal to the `suricata` EVE
format's, so one alert counts as the same action whichever way it arrives.

Decisions worth knowing:
- The MHN emitters send no event time; like mnemosyne, the receive time is the event time,
  without the usual "no usable timestamp" warning (it would be on every event). A
  `timestamp` that is present but unreadable is still warned about.
- ICMP alerts have no ports; that is no warning.
- `classification` (snort) has no event field: it is a rule's class, not the alert's.
- The payload's `sensor` (an MHN UUID) is ignored: the event's sensor is the authenticated
  `ctx.sensor`.
- A priority outside 1-4 (custom rules may set any) is dropped with a warning.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind

Record = dict[Any, Any]

# Keys only one of the two emitters writes: they tell the channels apart in format `auto`.
_SNORT_KEYS = ("header", "classification", "ethsrc", "iplen", "tcplen", "udplength")
_SURICATA_KEYS = ("signature_id", "signature_rev", "eth_src", "ip_ttl", "tcp_len", "udp_len")


def _first(record: Record, *keys: str) -> tuple[str, Any]:
    """(key, value) of the first key with a value; the first key and None when none has one."""
    for key in keys:
        if record.get(key) is not None:
            return key, record[key]
    return keys[0], None


def _adapt_for(product: str, severity_keys: tuple[str, ...]) -> Callable[[Any, RecordContext], list[Event]]:
    def adapt(record: Any, ctx: RecordContext) -> list[Event]:
        if not isinstance(record, dict):
            raise RecordRejected("not a JSON object")
        if record.get("source_ip") is None and record.get("signature") is None:
            raise RecordRejected(f"not a {product} alert: no source_ip and no signature")
        notes: list[str] = []
        severity_key, severity = _first(record, *severity_keys)
        fields = {
            "action": f"{product}.alert",
            "src_ip": get.address(record.get("source_ip"), "source_ip", notes),
            "src_port": get.port(record.get("source_port"), "source_port", notes),
            "dst_ip": get.address(record.get("destination_ip"), "destination_ip", notes),
            "dst_port": get.port(record.get("destination_port"), "destination_port", notes),
            "transport": get.transport(_first(record, "proto", "protocol")[1]),
            "signature": get.signature(record.get("signature"), record.get("signature_id"), "signature", notes),
            "severity": get.severity(severity, severity_key, notes),
        }
        ts = ctx.received
        if record.get("timestamp") is not None:
            parsed = parse_timestamp(record["timestamp"], ctx.timezone)
            if parsed is None:
                notes.append("timestamp is not a time; receive time used")
            else:
                ts = parsed
        outcome = get.ids_outcome(record.get("action"))
        return [make_event(ctx, Kind.IDS_ALERT, ts=ts, outcome=outcome, warnings=notes, **fields)]

    return adapt


def _has_alert_shape(record: Any) -> bool:
    return isinstance(record, dict) and "source_ip" in record and "signature" in record


def detect_snort(record: Any) -> bool:
    return _has_alert_shape(record) and any(key in record for key in _SNORT_KEYS)


def detect_suricata(record: Any) -> bool:
    return (
        _has_alert_shape(record)
        and any(key in record for key in _SURICATA_KEYS)
        and not any(key in record for key in _SNORT_KEYS)
    )


SNORT = Adapter(
    name="snort-hpfeeds",
    description="hpfeeds snort.alerts payloads (MHN snort sensor), one alert per message",
    adapt=_adapt_for("snort", ("priority",)),
    detect=detect_snort,
    priority=40,
)
SURICATA = Adapter(
    name="suricata-hpfeeds",
    description="hpfeeds suricata.events payloads (MHN suricata sensor), one alert per message",
    adapt=_adapt_for("suricata", ("priority", "severity")),
    detect=detect_suricata,
    priority=40,
)
