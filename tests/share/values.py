"""Realistic attacker rows and incidents for the sharing tests, hostile text included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from honeyatlas.incident import Fingerprint, Incident, IncidentKind, IncidentStatus, Step, incident_id
from honeyatlas.profile import AttackerSummary

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
EXPORTED_AT = T0 + timedelta(days=30)
SHA256 = "fa7de36ac4b90bfa2599b465ea8564cabefad7f3ba1d4657dd0899adab70b24e"
SENSORS = ("fra-cowrie-01", "sgp-dionaea-02", "nyc-cowrie-03", "syd-honeytrap-04")

# What attackers put where we keep fingerprints: SQL, markup, quotes, backslashes, line breaks,
# terminal escapes, a bidi override, a NUL, and a value far past any sane length.
HOSTILE = (
    "root/'; DROP TABLE x; --",
    'admin/<script>alert("x")</script>',
    "pi/raspberry\\' OR '1'='1",
    "user/line1\nStatus: closed\r\n\x1b[2J\x00\u202egnp.exe",
    "=HYPERLINK(\"http://evil.example/\")",
    "x" * 10_240,
)
HOSTILE_KEY = ", ".join(HOSTILE)


def attackers() -> list[AttackerSummary]:
    return [
        AttackerSummary(ip="45.155.205.233", first_seen=T0, last_seen=T0 + timedelta(hours=3), event_count=1_204,
                        sensor_count=4, country="NL", asn=49870,
                        tags=["malware_dropper", "brute_forcer", "campaign", "epidemic"]),
        AttackerSummary(ip="2a01:4f8:c17:1b2c::5", first_seen=T0 + timedelta(minutes=5),
                        last_seen=T0 + timedelta(minutes=50), event_count=88, sensor_count=3, country="DE",
                        asn=24940, tags=["brute_forcer", "campaign"]),
        AttackerSummary(ip="185.220.101.47", first_seen=T0 + timedelta(minutes=7), last_seen=T0 + timedelta(hours=1),
                        event_count=35, sensor_count=2, country=None, asn=None, tags=["scanner"]),
    ]


def campaign(key: str = HOSTILE_KEY, status: IncidentStatus = IncidentStatus.OPEN) -> Incident:
    opened = T0 + timedelta(minutes=20)
    sources = ("45.155.205.233", "2a01:4f8:c17:1b2c::5", "185.220.101.47", "198.51.100.9", "10.1.2.3")
    return Incident(
        id=incident_id(IncidentKind.CAMPAIGN, key, opened, str(Fingerprint.CREDENTIALS)),
        kind=IncidentKind.CAMPAIGN, key=key, status=status, opened_at=opened, last_seen=T0 + timedelta(hours=2),
        window_seconds=3600.0, summary="5 sources shared one credentials", event_count=5, sources=sources,
        source_count=len(sources), sensors=SENSORS[:3], fingerprint=Fingerprint.CREDENTIALS,
        timeline=tuple(Step(ts=T0 + timedelta(minutes=i), sensor=SENSORS[i % 3], source=s)
                       for i, s in enumerate(sources)),
    )


def epidemic(key: str = SHA256) -> Incident:
    opened = T0 + timedelta(hours=6)
    timeline = tuple(Step(ts=T0 + timedelta(hours=2 * i), sensor=sensor, source="45.155.205.233")
                     for i, sensor in enumerate(SENSORS))
    return Incident(
        id=incident_id(IncidentKind.EPIDEMIC, key, opened), kind=IncidentKind.EPIDEMIC, key=key,
        status=IncidentStatus.CLOSED, opened_at=opened, last_seen=T0 + timedelta(hours=9),
        window_seconds=7 * 86400.0, summary=f"sample {key[:12]} spread to 4 sensors", event_count=17,
        sources=("45.155.205.233", "2a01:4f8:c17:1b2c::5"), source_count=2, sensors=SENSORS, timeline=timeline,
        sources_per_sensor=dict.fromkeys(SENSORS, 1), doubling_seconds=9_000.0,
    )


def horizontal_scan() -> Incident:
    opened = T0 + timedelta(minutes=9)
    return Incident(
        id=incident_id(IncidentKind.HORIZONTAL_SCAN, "185.220.101.47", opened, "23"),
        kind=IncidentKind.HORIZONTAL_SCAN, key="185.220.101.47", status=IncidentStatus.CLOSED, opened_at=opened,
        last_seen=opened + timedelta(seconds=40), window_seconds=120.0,
        summary="185.220.101.47 probed port 23 on 5 sensors", event_count=6, sources=("185.220.101.47",),
        source_count=1, sensors=SENSORS, ports=(23,),
    )
