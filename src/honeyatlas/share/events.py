"""The events export (`/api/v1/events/export`): events as CSV or JSON, written in pieces.

Pure functions from `Event` values to text, so the web layer can stream a long export page by
page: a head, one piece per page, and a tail that says whether the export stopped at its cap.
Every attacker-controlled cell is defused as in the IoC feed (a leading `=`, `+`, `-`, `@`...
gets a `'`, so a spreadsheet shows it as text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import msgspec

from honeyatlas.event import Event
from honeyatlas.share.ioc import _defuse

EVENTS_CSV_HEADER = (
    "id", "ts", "sensor", "honeypot", "kind", "action", "outcome", "src_ip", "src_port", "src_country", "src_asn",
    "src_org", "dst_ip", "dst_port", "transport", "protocol", "session", "username", "password", "command", "url",
    "sha256", "flags",
)
_encoder = msgspec.json.Encoder()


def events_csv_head() -> str:
    return _csv([EVENTS_CSV_HEADER])


def events_csv(events: Iterable[Event]) -> str:
    rows = []
    for e in events:
        geo = e.src_geo
        cells = (
            e.id, e.ts.isoformat(), e.sensor, e.honeypot, str(e.kind), e.action, str(e.outcome), e.src_ip, e.src_port,
            geo.country if geo else None, geo.asn if geo else None, geo.org if geo else None, e.dst_ip, e.dst_port,
            e.transport, e.protocol, e.session, e.username, e.password, e.command, e.url, e.sha256,
            ";".join(map(str, e.flags)),
        )
        rows.append(["" if c is None else _defuse(c) if isinstance(c, str) else c for c in cells])
    return _csv(rows)


def events_csv_tail(truncated: bool, limit: int) -> str:
    """Nothing, or one last line saying the export stopped at its cap."""
    return f"# truncated: more than {limit} events match; narrow the view\r\n" if truncated else ""


def events_json_head(limit: int) -> bytes:
    return b'{"limit":' + str(limit).encode() + b',"events":['


def events_json(events: list[Event], first: bool) -> bytes:
    """A page's events as the next items of the `events` array."""
    body = _encoder.encode(events)[1:-1]
    return body if first or not body else b"," + body


def events_json_tail(truncated: bool) -> bytes:
    return b'],"truncated":' + (b"true" if truncated else b"false") + b"}"


def _csv(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
