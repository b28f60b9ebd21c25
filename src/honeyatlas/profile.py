"""Profiles: what honeyatlas knows about one attacker address or one malware sample.

Pure values built by the store from stored events and incidents, served by the API and
turned into IoC feeds, STIX and MISP by `honeyatlas.share`. `classify` is the one place
that decides what kind of attacker an address is, from counts the store computes.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class Role(enum.StrEnum):
    """Attacker classification, most serious first; an address may have several."""

    MALWARE_DROPPER = "malware_dropper"  # made a sensor fetch or receive a file
    INTRUDER = "intruder"  # logged in successfully and acted
    BRUTE_FORCER = "brute_forcer"  # many failed logins
    SCANNER = "scanner"  # probed ports or sensors without logging in
    VISITOR = "visitor"  # none of the above


ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.MALWARE_DROPPER: "Made a sensor download or receive a file (a URL or a payload hash was recorded).",
    Role.INTRUDER: "Logged in successfully at least once.",
    Role.BRUTE_FORCER: "At least 5 failed login attempts.",
    Role.SCANNER: "Probed at least 5 ports or 3 sensors, or a scan incident names it, without logging in.",
    Role.VISITOR: "Seen, but none of the above.",
}
BRUTE_FORCE_MIN_FAILURES = 5
SCANNER_MIN_PORTS = 5
SCANNER_MIN_SENSORS = 3


class ActivityCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What `classify` needs to know about one address."""

    failed_logins: int
    successful_logins: int
    files: int  # download/upload events, or events carrying a URL fetched or a payload hash
    ports: int
    sensors: int
    scan_incidents: int = 0


def classify(counts: ActivityCounts) -> list[Role]:
    roles = []
    if counts.files:
        roles.append(Role.MALWARE_DROPPER)
    if counts.successful_logins:
        roles.append(Role.INTRUDER)
    if counts.failed_logins >= BRUTE_FORCE_MIN_FAILURES:
        roles.append(Role.BRUTE_FORCER)
    if not counts.successful_logins and (
        counts.scan_incidents or counts.ports >= SCANNER_MIN_PORTS or counts.sensors >= SCANNER_MIN_SENSORS
    ):
        roles.append(Role.SCANNER)
    return roles or [Role.VISITOR]


class Count(msgspec.Struct, frozen=True):
    value: str | int
    count: int


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    username: str | None
    password: str | None
    attempts: int
    succeeded: bool


class IncidentRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    status: str
    opened_at: datetime


class AttackerProfile(msgspec.Struct, frozen=True, kw_only=True):
    ip: str
    first_seen: datetime
    last_seen: datetime
    event_count: int
    sensor_count: int
    sensors: list[str]
    ports: list[Count]  # destination ports, most used first
    protocols: list[Count]
    credentials: list[Credential]  # most tried first, at most `limit`
    commands: list[Count]
    urls: list[Count]
    sha256: list[Count]
    country: str | None
    city: str | None
    asn: int | None
    org: str | None
    incidents: list[IncidentRef]
    classification: list[Role]
    counts: ActivityCounts
    benign: bool = False  # inside `correlation.benign_networks`: a known research scanner


class Sighting(msgspec.Struct, frozen=True, kw_only=True):
    """One sensor that saw a sample: when first and last, from how many sources."""

    sensor: str
    first_seen: datetime
    last_seen: datetime
    sources: int
    events: int


class CurvePoint(msgspec.Struct, frozen=True):
    ts: datetime
    sensors: int  # cumulative distinct sensors that had seen the sample by `ts`


class MalwareProfile(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    md5: list[str]
    first_seen: datetime
    last_seen: datetime
    event_count: int
    source_count: int
    sources: list[Count]  # most active first, at most `limit`
    sightings: list[Sighting]  # in order of first sighting: the spread
    curve: list[CurvePoint]
    doubling_seconds: float | None
    urls: list[Count]
    incidents: list[IncidentRef]


class AttackerSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the IoC feed."""

    ip: str
    first_seen: datetime
    last_seen: datetime
    event_count: int
    sensor_count: int
    country: str | None
    asn: int | None
    tags: list[str]  # roles, then incident kinds that name the address
