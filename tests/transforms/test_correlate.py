"""The first correlation detectors: event time, replay invariance, bounded state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from honeyatlas.event import Event, Kind, new_event_id
from honeyatlas.transforms.correlate import MultiSensorDetector, ScanDetector

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ev(src: str, sensor: str, seconds: float, port: int = 22) -> Event:
    ts = T0 + timedelta(seconds=seconds)
    return Event(id=new_event_id(), ts=ts, ingest_ts=ts, sensor=sensor, honeypot="cowrie", kind=Kind.CONNECTION,
                 src_ip=src, dst_port=port)


def multi(**overrides: int) -> MultiSensorDetector:
    options = {"min_sensors": 3, "window_seconds": 600, "max_sources": 10_000, "max_hits_per_source": 1_000}
    options.update(overrides)
    return MultiSensorDetector(**options)


def test_incident_opens_at_the_kth_sensor_and_grows() -> None:
    detector = multi()
    assert detector.observe(ev("1.2.3.4", "a", 0)) is None
    assert detector.observe(ev("1.2.3.4", "a", 10)) is None  # same sensor again
    assert detector.observe(ev("1.2.3.4", "b", 20)) is None
    opened = detector.observe(ev("1.2.3.4", "c", 30))
    assert opened is not None and opened.members == ["a", "b", "c"]
    assert opened.opened_at == T0 + timedelta(seconds=30)  # event time of the k-th hit
    grown = detector.observe(ev("1.2.3.4", "d", 40))
    assert grown is opened and grown.members == ["a", "b", "c", "d"]
    assert detector.observe(ev("1.2.3.4", "d", 50)) is None  # nothing new


def test_hits_outside_the_window_do_not_count() -> None:
    detector = multi()
    detector.observe(ev("5.6.7.8", "a", 0))
    detector.observe(ev("5.6.7.8", "b", 100))
    assert detector.observe(ev("5.6.7.8", "c", 700)) is None  # "a" fell out of the 10-minute window


def test_replay_in_small_batches_gives_the_same_incidents() -> None:
    rng = random.Random(7)
    events = sorted(
        (ev(f"10.0.{rng.randrange(4)}.{rng.randrange(30)}", f"s{rng.randrange(6)}", rng.uniform(0, 3600))
         for _ in range(3000)),
        key=lambda e: e.ts,
    )

    def run(batches: int) -> list[tuple[str, datetime, tuple[str, ...]]]:
        detector = multi()
        opened = {}
        size = max(1, len(events) // batches)
        for start in range(0, len(events), size):
            for event in events[start : start + size]:
                incident = detector.observe(event)
                if incident is not None:
                    opened[(incident.source, incident.opened_at)] = tuple(incident.members)
        return sorted((s, t, m) for (s, t), m in opened.items())

    at_once = run(1)
    assert at_once and at_once == run(300)


def test_state_stays_bounded_with_many_distinct_sources() -> None:
    detector = multi(max_sources=50_000)
    for i in range(200_000):
        detector.observe(ev(f"{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}.1", "a", i / 1000))
    assert detector.tracked_sources == 50_000
    assert detector.evictions == 150_000


def test_scans_are_told_apart() -> None:
    detector = ScanDetector(min_ports=10, min_sensors=5, window_seconds=60, max_sources=1000, max_hits_per_source=1000)
    vertical = [i for port in range(20, 40) for i in detector.observe(ev("9.9.9.9", "a", port / 10, port))]
    assert {i.kind for i in vertical} == {"vertical_scan"}
    horizontal = [i for n in range(8) for i in detector.observe(ev("8.8.4.4", f"s{n}", n, 445))]
    assert {i.kind for i in horizontal} == {"horizontal_scan"}
    assert horizontal[-1].members == [f"s{n}" for n in range(8)]
