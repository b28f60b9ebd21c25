"""Events and batches for the bus tests: every field of an Event set, cowrie-sized."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from honeyatlas.bus import EventBatch
from honeyatlas.event import Event, Flag, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus, Step
from honeyatlas.store import DeadLetter, Receipt

T0 = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def full_event(i: int = 0, src_ip: str | None = "203.0.113.7") -> Event:
    """An event with every field set to a value other than its default."""
    return Event(
        id=new_event_id(), ts=T0 + timedelta(microseconds=i), ingest_ts=T0 + timedelta(seconds=1, microseconds=7),
        sensor="berlin-1", honeypot="cowrie", kind=Kind.LOGIN_ATTEMPT, action="cowrie.login.failed",
        outcome=Outcome.FAILURE, src_ip=src_ip, src_port=40000 + i, dst_ip="198.51.100.2", dst_port=22,
        transport="tcp", protocol="ssh", session=f"s{i:08x}", username="root", password="hunter2 ünïcode",
        command="uname -a; cat /proc/cpuinfo", url="http://203.0.113.9/x.sh", sha256="a" * 64, md5="b" * 32,
        signature="ET SCAN", severity=2, user_agent="curl/8", client_version="SSH-2.0-Go",
        src_geo=Geo(country="DE", city="Berlin", lat=52.52, lon=13.405, asn=3320, org="DTAG",
                    precision=Precision.CITY),
        dst_geo=Geo(country="NL", lat=52.0, lon=5.0, precision=Precision.SENSOR),
        flags=(Flag.TRUNCATED, Flag.DEMO), warnings=("password truncated",),
        raw='{"eventid":"cowrie.login.failed","src_ip":"203.0.113.7","username":"root","password":"hunter2"}',
        v=1,
    )


def cowrie_event(i: int) -> Event:
    """A typical cowrie login event (~600 bytes encoded, raw record included)."""
    ip = f"198.18.{i // 256 % 256}.{i % 256}"
    return Event(
        id=new_event_id(), ts=T0, ingest_ts=T0, sensor="berlin-1", honeypot="cowrie", kind=Kind.LOGIN_ATTEMPT,
        action="cowrie.login.failed", outcome=Outcome.FAILURE, src_ip=ip, src_port=50000 + i % 10000,
        dst_ip="10.0.0.5", dst_port=22, transport="tcp", protocol="ssh", session=f"{i:012x}",
        username="admin", password="123456", src_geo=Geo(country="US", lat=37.7, lon=-122.4, asn=15169,
                                                         org="Example", precision=Precision.CITY),
        raw='{"eventid":"cowrie.login.failed","username":"admin","password":"123456","message":"login attempt '
            f'[admin/123456] failed","sensor":"berlin-1","timestamp":"2025-03-01T12:30:15.123456Z","src_ip":"{ip}",'
            f'"session":"{i:012x}","src_port":{50000 + i % 10000},"dst_ip":"10.0.0.5","dst_port":22,"protocol":"ssh"}}',
    )


def full_batch(events: int = 3, *, receipt: bool = True) -> EventBatch:
    return EventBatch(
        source="http", sensor="berlin-1",
        events=[full_event(i, src_ip=None if i == 2 else f"203.0.113.{i}") for i in range(events)],
        dead_letters=[DeadLetter(ts=T0, source="http", sensor="berlin-1", format="cowrie", index=5,
                                 reason="invalid_json", raw=b"\x00\xff{not json")],
        receipt=Receipt(sensor="berlin-1", key="k-1", digest=b"\x01" * 32, response=b'{"accepted":3}')
        if receipt else None,
        streams=[0, 1, None][:events] + [None] * max(events - 3, 0),
    )


def small_batch(tag: str, ip: str = "203.0.113.1") -> EventBatch:
    return EventBatch(source="http", sensor="berlin-1", events=[full_event(0, src_ip=ip)], dead_letters=[],
                      receipt=Receipt(sensor="berlin-1", key=tag, digest=b"", response=b""))


def incident() -> Incident:
    return Incident(
        id="inc_1", kind=IncidentKind.MULTI_SENSOR, key="203.0.113.7", status=IncidentStatus.OPEN, opened_at=T0,
        last_seen=T0 + timedelta(seconds=5), window_seconds=600.0, summary="3 sensors", event_count=9,
        sources=("203.0.113.7",), source_count=1, sensors=("a", "b", "c"), ports=(22,),
        timeline=(Step(ts=T0, sensor="a", source="203.0.113.7", port=22),),
    )
