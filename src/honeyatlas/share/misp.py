"""MISP events: one incident as the {"Event": {...}} JSON that MISP imports and feeds serve.

What lives here: `misp_event`. Pure: a plain dict, no PyMISP. Attributes:
- `ip-src` per source address that is a row of `attackers` (the store already chose which
  may leave), to_ids true, first/last seen and a comment with the counts;
- `sha256` for an epidemic's payload, to_ids true;
- `text` (category Other) for a campaign's fingerprint and each second key its sources also
  shared, to_ids false: a credential list, commands or an SSH banner are attacker text,
  bounded and made printable, never a rule; the comment says how rare each was. A
  campaign's confidence is a `honeyatlas:confidence` tag.

Deterministic like the STIX export: the event uuid is derived from the incident id and
every attribute uuid from the event uuid, type and value; the event `timestamp` is when
the incident last changed (so MISP's sync sees a newer event only when something moved),
and `generated_at` only caps timestamps so nothing is dated in the future. Sensor names
never appear: a shared event must not tell attackers which hosts are honeypots.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.profile import AttackerSummary
from honeyatlas.share._fields import address, changed_at, derived_uuid, iso_z, payload_of, printable, utc

INFO_LIMIT = 256
FINGERPRINT_LIMIT = 1024

# MISP's numeric vocabularies, as the strings MISP writes.
THREAT_LEVEL = {"high": "1", "medium": "2", "low": "3", "undefined": "4"}
ANALYSIS = {"initial": "0", "ongoing": "1", "completed": "2"}
DISTRIBUTION_ORGANISATION_ONLY = "0"  # the operator widens it in MISP, never we
# Payload spread and coordinated campaigns are worth an analyst's look; a scanner is background noise.
_THREAT_BY_KIND = {
    IncidentKind.EPIDEMIC: THREAT_LEVEL["medium"],
    IncidentKind.CAMPAIGN: THREAT_LEVEL["medium"],
    IncidentKind.MULTI_SENSOR: THREAT_LEVEL["low"],
    IncidentKind.HORIZONTAL_SCAN: THREAT_LEVEL["low"],
    IncidentKind.VERTICAL_SCAN: THREAT_LEVEL["low"],
}


def misp_event(*, incident: Incident, attackers: list[AttackerSummary], generated_at: datetime) -> dict:
    """The incident as a MISP event; `attackers` are the feed rows of its sources (others are only counted)."""
    cap = utc(generated_at)
    event_uuid = derived_uuid("misp-event", incident.id)
    changed = min(utc(changed_at(incident)), cap)
    attributes: dict[tuple[str, str], dict[str, Any]] = {}

    def add(kind: str, category: str, value: str, *, to_ids: bool, comment: str,
            seen: tuple[datetime, datetime] | None = None) -> None:
        attribute: dict[str, Any] = {
            "uuid": derived_uuid("misp-attribute", event_uuid, kind, value), "type": kind, "category": category,
            "value": value, "to_ids": to_ids, "disable_correlation": False, "comment": comment,
        }
        if seen is not None:
            first, last = min(utc(seen[0]), cap), min(utc(seen[1]), cap)
            attribute["first_seen"] = _misp_time(first)
            attribute["last_seen"] = _misp_time(max(first, last))
        attributes.setdefault((kind, value), attribute)

    rows = {str(addr): row for row in attackers if (addr := address(row.ip)) is not None}
    for source in incident.sources:
        addr = address(source)
        row = rows.get(str(addr)) if addr else None
        if row is not None:
            add("ip-src", "Network activity", str(addr), to_ids=True, seen=(row.first_seen, row.last_seen),
                comment=f"first seen {iso_z(row.first_seen)}, last seen {iso_z(row.last_seen)}, "
                f"{row.event_count} events at {row.sensor_count} honeypot sensors")
    payload = payload_of(incident)
    if payload is not None:
        digest, first_seen = payload
        add("sha256", "Payload delivery", digest, to_ids=True, seen=(first_seen, incident.last_seen),
            comment=f"payload seen at {len(incident.sensors)} honeypot sensors from {incident.source_count} sources")
    if incident.fingerprint is not None:
        rarity = f"; {incident.keys[0].background:g} other sources showed it before" if incident.keys else ""
        add("text", "Other", printable(incident.key, FINGERPRINT_LIMIT), to_ids=False,
            comment=f"campaign fingerprint: {incident.fingerprint}{rarity}")
    for key in incident.keys[1:]:  # the second keys the campaign's sources also shared
        add("text", "Other", printable(key.value, FINGERPRINT_LIMIT), to_ids=False,
            comment=f"also shared {key.fingerprint}: {key.sources} sources; {key.background:g} other sources "
            "showed both before")

    tags = [f'honeyatlas:incident-kind="{incident.kind}"', f'honeyatlas:status="{incident.status}"']
    if incident.fingerprint is not None:
        tags.append(f'honeyatlas:fingerprint="{incident.fingerprint}"')
    if incident.confidence is not None:
        tags.append(f'honeyatlas:confidence="{incident.confidence:g}"')
    return {"Event": {
        "uuid": event_uuid,
        "info": printable(f"honeyatlas {incident.kind.replace('_', ' ')} incident: {incident.summary}", INFO_LIMIT),
        "date": min(utc(incident.opened_at), cap).date().isoformat(),
        "timestamp": str(int(changed.timestamp())),
        "published": False,
        "threat_level_id": _THREAT_BY_KIND[incident.kind],
        # An open incident is still growing; a closed one will not change again.
        "analysis": ANALYSIS["ongoing"] if incident.status is IncidentStatus.OPEN else ANALYSIS["completed"],
        "distribution": DISTRIBUTION_ORGANISATION_ONLY,
        "Tag": [{"name": tag} for tag in tags],
        "Attribute": list(attributes.values()),
    }}


def _misp_time(ts: datetime) -> str:
    """MISP's own first_seen/last_seen form: microseconds and a +00:00 offset."""
    return ts.isoformat(timespec="microseconds")
