"""Custom JSON sources described in configuration, with no code: `[mappings.NAME]`.

`build_mapped_adapter(name, mapping)` turns one `MappingConfig` into an ordinary `Adapter`
(format NAME, usable in `POST /api/v1/ingest/NAME` and, with `detect_fields`, by `auto`).
Field paths are dotted (`peer.addr`, `source.0` for the first item of a list; a key that
itself contains dots, as in flattened ECS, is matched too: see `extract.lookup`). Every value still goes
through `make_event`, so mapped sources get the same bounds and validation as built-ins.
The mapping is validated when the service starts: errors name the config key.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.extract import lookup
from honeyatlas.adapters.fields import make_event, parse_hash, parse_ip, parse_port, parse_timestamp
from honeyatlas.config import MappingConfig
from honeyatlas.errors import ConfigError, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

TEXT_TARGETS = (
    "action", "transport", "protocol", "session", "username", "password", "command", "url",
    "signature", "user_agent", "client_version",
)
TARGETS = (*TEXT_TARGETS, "src_ip", "src_port", "dst_ip", "dst_port", "sha256", "md5", "severity")


def _zone(key: str, name: str | None) -> tzinfo | None:
    if name is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(key, f"unknown time zone {name!r}") from exc


def _kind(key: str, value: str) -> Kind:
    try:
        return Kind(value)
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not an event kind; use one of {', '.join(k.value for k in Kind)}") from exc


def _outcome(key: str, value: str) -> Outcome:
    try:
        return Outcome(value)
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not an outcome; use success, failure or unknown") from exc


def build_mapped_adapter(name: str, mapping: MappingConfig) -> Adapter:
    prefix = f"mappings.{name}"
    for target in mapping.fields:
        if target not in TARGETS:
            raise ConfigError(f"{prefix}.fields.{target}", f"not a mappable event field; use one of {', '.join(TARGETS)}")
    if mapping.kind is not None and mapping.kind_field is not None:
        raise ConfigError(f"{prefix}.kind", "set either kind (a constant) or kind_field, not both")
    constant_kind = _kind(f"{prefix}.kind", mapping.kind) if mapping.kind else None
    default_kind = _kind(f"{prefix}.default_kind", mapping.default_kind)
    kind_map = {k: _kind(f"{prefix}.kind_map.{k}", v) for k, v in mapping.kind_map.items()}
    outcome_map = {k: _outcome(f"{prefix}.outcome_map.{k}", v) for k, v in mapping.outcome_map.items()}
    zone = _zone(f"{prefix}.timezone", mapping.timezone)
    if mapping.timestamp_format is not None:
        try:
            datetime.now().strftime(mapping.timestamp_format)
        except ValueError as exc:
            raise ConfigError(f"{prefix}.timestamp_format", f"not a strptime format: {exc}") from exc

    def timestamp(record: Any, ctx: RecordContext, notes: list[str]) -> datetime | None:
        if mapping.timestamp_field is None:
            return None
        value = lookup(record, mapping.timestamp_field)
        if value is None:
            notes.append(f"timestamp field {mapping.timestamp_field} missing")
            return None
        local = zone or ctx.timezone
        if mapping.timestamp_format is not None and isinstance(value, str):
            try:
                parsed = datetime.strptime(value[:64], mapping.timestamp_format)
            except ValueError:
                notes.append(f"timestamp does not match {mapping.timestamp_format}")
                return None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=local)).astimezone(UTC)
        parsed_ts = parse_timestamp(value, local)
        if parsed_ts is None:
            notes.append("timestamp not understood")
        return parsed_ts

    def adapt(record: Any, ctx: RecordContext) -> list[Event]:
        if not isinstance(record, dict):
            raise RecordRejected("not a JSON object")
        notes: list[str] = []
        values: dict[str, Any] = {}
        for target, path in mapping.fields.items():
            value = lookup(record, path)
            if value is None:
                continue
            if target in ("src_ip", "dst_ip"):
                parsed: Any = parse_ip(value)
            elif target in ("src_port", "dst_port"):
                parsed = parse_port(value)
            elif target in ("sha256", "md5"):
                parsed = parse_hash(value, 64 if target == "sha256" else 32)
            elif target == "severity":
                parsed = value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4 else None
            else:
                parsed = value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
            if parsed is None:
                notes.append(f"{target} from {path} is not usable")
                continue
            values[target] = parsed
        if not values:
            raise RecordRejected(f"no mapped field present (format {name})")
        kind = constant_kind or default_kind
        if mapping.kind_field is not None:
            raw_kind = lookup(record, mapping.kind_field)
            kind = kind_map.get(str(raw_kind), default_kind) if raw_kind is not None else default_kind
        outcome = Outcome.UNKNOWN
        if mapping.outcome_field is not None:
            raw_outcome = lookup(record, mapping.outcome_field)
            if raw_outcome is not None:
                outcome = outcome_map.get(str(raw_outcome), Outcome.UNKNOWN)
        honeypot = mapping.honeypot
        if mapping.honeypot_field is not None:
            found = lookup(record, mapping.honeypot_field)
            if isinstance(found, str) and found:
                honeypot = found.lower()
        if honeypot is not None:
            values["honeypot"] = honeypot
        return [make_event(ctx, kind, ts=timestamp(record, ctx, notes), outcome=outcome, warnings=notes, **values)]

    def detect(record: Any) -> bool:
        return isinstance(record, dict) and all(
            lookup(record, path) is not None for path in mapping.detect_fields
        )

    return Adapter(
        name=name,
        description=mapping.description or f"custom source {name} (configured mapping)",
        adapt=adapt,
        detect=detect if mapping.detect_fields else None,
        priority=50,
    )
