"""The `event` format: records already written in the honeyatlas event schema (docs/events.md).

A record is a JSON object with the `Event` field names. `ts` (ISO-8601 text) and `kind` (a
catalogue value) are required; every other field is optional. The server assigns `id`,
`ingest_ts`, `sensor`, `honeypot`, `src_geo`, `dst_geo`, `flags` and `raw`, so those are
ignored when present; a `sensor` naming another sensor is ignored too, since the event
always belongs to the authenticated `ctx.sensor`. `v`, when present, must be 1.

What is rejected and what is only warned about:
- rejected: not an object, a missing or unparseable `ts`, a missing `kind`, a value of the
  wrong type (text where text belongs, a whole number for ports and `severity`, a list of
  text for `warnings`), a `kind` or `outcome` outside its catalogue, another `v` ("unsupported
  schema version N"), text holding a lone surrogate (which msgspec cannot match). The reason
  names the field and never quotes the value, so reasons stay few and stable.
- dropped with a warning: an address that is not an IP, a port outside 0-65535, a digest of
  the wrong shape, a `severity` outside 1-4, and unknown field names (one warning listing
  at most eight of them).
- kept: the record's own `warnings`, after the adapter's; every text field is cleaned and
  capped by make_event like any other adapter's.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.fields import make_event, parse_hash, parse_ip, parse_port, parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import EVENT_FIELDS, FIELD_LIMITS, MAX_WARNINGS, SCHEMA_VERSION, Event, Kind, Outcome

SERVER_FIELDS = frozenset({"id", "ingest_ts", "sensor", "honeypot", "src_geo", "dst_geo", "flags", "raw"})
SEVERITY_RANGE = range(1, 5)  # docs/events.md: 1 (highest) to 4
MAX_LISTED_UNKNOWN = 8


class NativeRecord(msgspec.Struct, kw_only=True):
    """The fields a sender may set; converted with strict=False, so "22" is accepted as a port."""

    ts: str
    kind: Kind
    action: str | None = None
    outcome: Outcome | None = None
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    transport: str | None = None
    protocol: str | None = None
    session: str | None = None
    username: str | None = None
    password: str | None = None
    command: str | None = None
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    signature: str | None = None
    severity: int | None = None
    user_agent: str | None = None
    client_version: str | None = None
    warnings: list[str] = []
    v: int | None = None


# Free text, passed to make_event as given: the fields that have a length limit.
_TEXT_FIELDS = tuple(name for name in NativeRecord.__struct_fields__ if name in FIELD_LIMITS)
_ERROR_FIELD = re.compile(r" - at `\$\.(\w+)")
_MISSING_FIELD = re.compile(r"^Object missing required field `(\w+)`")
_CATALOGUES: dict[str, tuple[str, ...]] = {
    "kind": tuple(Kind),
    "outcome": tuple(Outcome),
}


def _reason(error: msgspec.ValidationError) -> str:
    """A short, stable rejection reason: names the field, never quotes the sender's value."""
    message = str(error)
    missing = _MISSING_FIELD.match(message)
    if missing:
        return f"missing {missing.group(1)}"
    at = _ERROR_FIELD.search(message)
    if at is None:
        return "field names must be text" if "`key`" in message else "invalid record"
    field = at.group(1)
    if field in _CATALOGUES and message.startswith("Invalid enum value"):
        return f"invalid {field}: expected one of {', '.join(_CATALOGUES[field])}"
    problem = message[: at.start()]
    return f"invalid {field}: {problem[:1].lower()}{problem[1:]}"


def _address(value: str | None, name: str, notes: list[str]) -> str | None:
    address = parse_ip(value)
    if address is None and value is not None:
        notes.append(f"{name} is not an IP address; dropped")
    return address


def _port(value: int | None, name: str, notes: list[str]) -> int | None:
    port = parse_port(value)
    if port is None and value is not None:
        notes.append(f"{name} is outside 0-65535; dropped")
    return port


def _digest(value: str | None, name: str, length: int, notes: list[str]) -> str | None:
    digest = parse_hash(value, length)
    if digest is None and value is not None:
        notes.append(f"{name} is not {length} hex digits; dropped")
    return digest


def _unknown_fields(record: dict[str, Any]) -> str | None:
    unknown = sorted(key for key in record if key not in EVENT_FIELDS)
    if not unknown:
        return None
    listed = ", ".join(key[:32] for key in unknown[:MAX_LISTED_UNKNOWN])
    more = len(unknown) - MAX_LISTED_UNKNOWN
    return f"unknown fields ignored: {listed}" + (f" and {more} more" if more > 0 else "")


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    try:
        given = msgspec.convert(record, NativeRecord, strict=False)
    except msgspec.ValidationError as error:
        raise RecordRejected(_reason(error)) from None
    except UnicodeEncodeError:  # msgspec matches enums, numbers and keys as UTF-8
        raise RecordRejected("text with a lone surrogate") from None
    if given.v is not None and given.v != SCHEMA_VERSION:
        raise RecordRejected(f"unsupported schema version {given.v}")
    ts = parse_timestamp(given.ts, ctx.timezone)
    if ts is None:
        raise RecordRejected("invalid ts: not an ISO-8601 timestamp")

    notes: list[str] = []
    unknown = _unknown_fields(record)
    if unknown:
        notes.append(unknown)
    severity = given.severity
    if severity is not None and severity not in SEVERITY_RANGE:
        notes.append("severity is outside 1-4; dropped")
        severity = None
    fields: dict[str, Any] = {name: getattr(given, name) for name in _TEXT_FIELDS}
    fields.update(
        src_ip=_address(given.src_ip, "src_ip", notes),
        src_port=_port(given.src_port, "src_port", notes),
        dst_ip=_address(given.dst_ip, "dst_ip", notes),
        dst_port=_port(given.dst_port, "dst_port", notes),
        sha256=_digest(given.sha256, "sha256", 64, notes),
        md5=_digest(given.md5, "md5", 32, notes),
        severity=severity,
    )
    return [
        make_event(
            ctx,
            given.kind,
            ts=ts,
            outcome=given.outcome or Outcome.UNKNOWN,
            warnings=notes + given.warnings[:MAX_WARNINGS],
            **fields,
        )
    ]


ADAPTER = Adapter(
    name="event",
    description="records already in the honeyatlas event schema, version 1 (docs/events.md)",
    adapt=adapt,
)
