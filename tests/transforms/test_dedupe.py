"""SessionDeduplicator: one count per action across two streams, bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from honeyatlas.event import Event, Kind, new_event_id
from honeyatlas.transforms.dedupe import SessionDeduplicator

T0 = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)


def ev(session: str | None, action: str, *, username: str | None = None, ts: datetime = T0,
       sensor: str = "s1") -> Event:
    return Event(id=new_event_id(), ts=ts, ingest_ts=ts, sensor=sensor, honeypot="cowrie", kind=Kind.LOGIN_ATTEMPT,
                 action=action, session=session, username=username)


def test_each_action_counts_once_whichever_stream_comes_first() -> None:
    dedup = SessionDeduplicator(ttl_seconds=3600, max_sessions=10)
    log_events = [ev("a", "cowrie.login.failed", username="root"), ev("a", "cowrie.login.failed", username="root"),
                  ev("a", "cowrie.client.kex")]
    summary_events = [ev("a", "cowrie.login.failed", username="root"), ev("a", "cowrie.login.failed", username="root")]
    assert [dedup.keep(e, 0) for e in log_events] == [True, True, True]  # repeats within a stream are real
    assert [dedup.keep(e, 1) for e in summary_events] == [False, False]

    other = SessionDeduplicator(ttl_seconds=3600, max_sessions=10)
    assert [other.keep(e, 1) for e in summary_events] == [True, True]
    assert [other.keep(e, 0) for e in log_events] == [False, False, True]


def test_sessions_are_per_sensor_and_sessionless_events_pass() -> None:
    dedup = SessionDeduplicator(ttl_seconds=3600, max_sessions=10)
    assert dedup.keep(ev("a", "x", sensor="s1"), 0)
    assert dedup.keep(ev("a", "x", sensor="s2"), 1)
    assert dedup.keep(ev(None, "x"), 0) and dedup.keep(ev(None, "x"), 1)


def test_state_is_bounded_by_size_and_age() -> None:
    dedup = SessionDeduplicator(ttl_seconds=60, max_sessions=100)
    for i in range(1000):
        dedup.keep(ev(f"s{i}", "x", ts=T0), 0)
    assert len(dedup) == 100 and dedup.evicted_by_size == 900
    dedup.keep(ev("late", "x", ts=T0 + timedelta(seconds=61)), 0)
    assert len(dedup) == 1 and dedup.evicted_by_age == 100
