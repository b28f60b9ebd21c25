"""What every sharing format reads and writes alike: timestamps, hostile text, ids, incident facts.

What lives here: UTC normalisation, bounded printable text for attacker-controlled
strings, address parsing, the deterministic id namespace, and the two facts about an
incident that STIX and MISP both derive (when it last changed, which payload it spread).
The format modules (`ioc`, `stix`, `misp`) use these; nothing here knows any format.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import uuid
from datetime import datetime, timedelta

from honeyatlas.clock import as_utc
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus

# honeyatlas's own uuid5 namespace for every id it derives in a shared document. Changing it
# changes every id that consumers have already stored: never do.
NAMESPACE = uuid.UUID("056d0022-210a-4fad-a484-11ed7db626c8")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def derived_uuid(*parts: str) -> str:
    """The same parts give the same UUID in any process; "|" cannot make two lists collide.

    Each part is prefixed by its length, so ("a|b", "c") and ("a", "b|c") differ.
    """
    text = "".join(f"{len(part)}:{part}|" for part in parts)
    return str(uuid.uuid5(NAMESPACE, text))


utc = as_utc  # the name the exporters use


def iso_z(ts: datetime) -> str:
    """ISO 8601 in UTC with a Z: "2024-05-01T12:00:00Z", microseconds only when present."""
    return utc(ts).replace(tzinfo=None).isoformat() + "Z"


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `text` names, or None when it is not one (it is then never exported as one)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def printable(text: str, limit: int) -> str:
    """`text` made safe to show: one line, no control or format characters, at most `limit` characters.

    Attacker strings reach analysts' screens, terminals and web consoles through the
    documents we share. Every character of Unicode category C (controls, newlines, bidi
    overrides, lone surrogates, unassigned) is written as a visible \\xNN, \\uNNNN or
    \\UNNNNNNNN escape, so a value cannot forge a second line or reorder what is shown; a
    backslash is doubled, so the escaped text still tells exactly what was sent. Past
    `limit` the text is cut and says how much was left out.
    """
    parts = [_visible(char) for char in text]
    if sum(map(len, parts)) <= limit:
        return "".join(parts)
    budget, kept = limit - 40, 0  # room for the note; an escape is never cut in half
    while kept < len(parts) and budget >= len(parts[kept]):
        budget -= len(parts[kept])
        kept += 1
    return f"{''.join(parts[:kept])}… ({len(text) - kept} more characters)"


def _visible(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if not unicodedata.category(char).startswith("C"):
        return char
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def changed_at(incident: Incident) -> datetime:
    """When the incident last changed: its last event, or when its window ran out if it closed."""
    if incident.status is IncidentStatus.CLOSED:
        return incident.last_seen + timedelta(seconds=incident.window_seconds)
    return incident.last_seen


def payload_of(incident: Incident) -> tuple[str, datetime] | None:
    """An epidemic's SHA-256 (lower case) and when its first sensor saw it; None for other kinds or a malformed key."""
    digest = incident.key.lower()
    if incident.kind is not IncidentKind.EPIDEMIC or not _SHA256.fullmatch(digest):
        return None
    first = min(incident.timeline[0].ts, incident.opened_at) if incident.timeline else incident.opened_at
    return digest, first
