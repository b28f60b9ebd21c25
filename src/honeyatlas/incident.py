"""Incidents: what the correlation detectors find across sensors, as frozen values.

What lives here: the `Incident` struct and its `Step`s, the incident-kind catalogue, the
status values, the schema version and the deterministic incident id. Nothing here does I/O
or imports another honeyatlas module except `event`; docs/correlation.md documents every
field and kind, and tests/test_correlation_docs.py fails when the two disagree.

An incident is emitted again every time it changes (a new sensor, source or port joins, it
closes); consumers keep the latest value per `id`. Ids are derived from what defines the
incident (kind, fingerprint, key, opening event time), so replaying the same trace gives
the same ids, and a store can upsert.
"""

from __future__ import annotations

import enum
import hashlib
import math
from datetime import datetime
from urllib.parse import urlsplit

import msgspec

INCIDENT_SCHEMA_VERSION = 1


class IncidentKind(enum.StrEnum):
    MULTI_SENSOR = "multi_sensor"
    HORIZONTAL_SCAN = "horizontal_scan"
    VERTICAL_SCAN = "vertical_scan"
    CAMPAIGN = "campaign"
    EPIDEMIC = "epidemic"


INCIDENT_KIND_DESCRIPTIONS: dict[IncidentKind, str] = {
    IncidentKind.MULTI_SENSOR: "One source (or its /24, or its ASN) reached at least k distinct sensors within a window.",
    IncidentKind.HORIZONTAL_SCAN: "One source probed the same port on many sensors within a short window.",
    IncidentKind.VERTICAL_SCAN: "One source probed many ports of one sensor within a short window.",
    IncidentKind.CAMPAIGN: "Many sources shared one fingerprint within a window: a credential list, a command "
    "sequence, a download host or an SSH client banner.",
    IncidentKind.EPIDEMIC: "One payload (SHA-256) was seen at at least k sensors: where it appeared first, the order "
    "and time of its spread, and how fast it grows.",
}


class IncidentStatus(enum.StrEnum):
    OPEN = "open"  # still inside its window: more members may join
    CLOSED = "closed"  # the window passed (in event time) with no new member


class Fingerprint(enum.StrEnum):
    """What the members of a campaign share."""

    CREDENTIALS = "credentials"  # the same first N distinct username/password pairs of a session
    COMMANDS = "commands"  # the same first N commands of a session
    DOWNLOAD_HOST = "download_host"  # files fetched from the same host
    CLIENT_VERSION = "client_version"  # the same SSH client banner


class Step(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One member joining an incident: the first time a sensor (or port, or source) was hit."""

    ts: datetime
    sensor: str
    source: str | None = None
    port: int | None = None


class MatchedKey(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why a campaign opened: one key its sources shared, and how rare it was.

    The campaign's own fingerprint comes first; a weak one (a banner, a command sequence)
    is followed by the second keys that corroborate it. `background` is the decayed count of
    other sources that showed the key before the campaign's window (for a second key: that
    showed it together with the first); `campaign_max_background_sources` or more is common."""

    fingerprint: Fingerprint
    value: str  # attacker-controlled text
    sources: int  # sources in the window that showed it (a second key: together with the first)
    background: float
    strong: bool = False  # a credential list or a download host: opens alone when rare


class Incident(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One detection, as it stands after the latest event that changed it."""

    id: str
    kind: IncidentKind
    key: str  # the source address or group, the SHA-256, or the fingerprint value
    status: IncidentStatus
    opened_at: datetime  # event time of the defining hit (the k-th sensor, source or port)
    last_seen: datetime  # event time of the latest event that belongs to it
    window_seconds: float
    summary: str
    event_count: int  # events that belong to it since it opened (the defining ones included)
    sources: tuple[str, ...] = ()  # at most `max_members_per_incident`, first first
    source_count: int = 0  # exact, even when `sources` is cut
    sensors: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    timeline: tuple[Step, ...] = ()  # members in the order they joined, at most max_members_per_incident
    fingerprint: Fingerprint | None = None  # campaigns
    sources_per_sensor: dict[str, int] = {}  # epidemics: distinct sources per sensor
    doubling_seconds: float | None = None  # epidemics: doubling time of the sensor count
    keys: tuple[MatchedKey, ...] = ()  # campaigns: the keys that opened it and how rare each was
    confidence: float | None = None  # campaigns: 0-1, from the keys' rarity and number (docs/correlation.md)
    v: int = INCIDENT_SCHEMA_VERSION


INCIDENT_FIELDS: tuple[str, ...] = Incident.__struct_fields__


def incident_id(kind: IncidentKind, key: str, opened_at: datetime, qualifier: str = "") -> str:
    """The same defining facts give the same id, in any process and on any replay.

    `qualifier` tells apart incidents of one key that may open at the same instant: the
    fingerprint type of a campaign, the port of a horizontal scan, the sensor of a vertical one.
    """
    text = f"{kind}|{qualifier}|{key}|{opened_at.isoformat()}"
    return "inc_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def doubling_seconds(first_sightings: list[datetime]) -> float | None:
    """Doubling time of a cumulative count from the times each member first appeared.

    Least-squares fit of log2(cumulative count) against time; None with fewer than three
    points, all at one instant, or a curve that does not grow.
    """
    if len(first_sightings) < 3:
        return None
    start = min(first_sightings)
    xs = [(t - start).total_seconds() for t in sorted(first_sightings)]
    ys = [math.log2(n) for n in range(1, len(xs) + 1)]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return 1 / slope if slope > 0 else None


_OWNER_PART_LIMIT = 256  # characters of a shared host's owner part inside a fingerprint value


def shared_hosts(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Configured public file hosts as `download_key` compares them (lower case, no dots at
    either end)."""
    return tuple(name.lower().strip(".") for name in names)


def download_key(url: str, shared_hosts: tuple[str, ...]) -> str | None:
    """The `download_host` fingerprint of a fetched URL: its host, or for a public file host
    (one of `shared_hosts`, or a subdomain of one) the host and the owner's part of the path:
    the first two path segments (`raw.githubusercontent.com/<user>/<repo>`,
    `pastebin.com/raw/<paste>`), the whole path and query when it has fewer. Thousands of
    unrelated bots fetch from GitHub; one operator's repository is what a campaign shares.
    None when the URL has no host (or, on a shared host, no path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    if not any(host == shared or host.endswith("." + shared) for shared in shared_hosts):
        return host
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2:
        owner = "/".join(segments[:2])
    else:
        owner = "/".join(segments) + (f"?{parts.query}" if parts.query else "")
    if not owner:
        return None
    return f"{host}/{owner}"[:_OWNER_PART_LIMIT]
