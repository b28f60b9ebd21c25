"""events_for_replay: the latest events of the replay windows, in arrival order, at most `limit`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from honeyatlas.event import Event
from honeyatlas.store.duckdb import DuckDBStore
from tests.store.test_stats_rollups import append_in_batches, make_event, make_store


async def replayed(store: DuckDBStore, chunk_events: int = 20_000, **windows: float) -> list[Event]:
    chunks = [chunk async for chunk in store.events_for_replay(chunk_events=chunk_events, **windows)]  # type: ignore[arg-type]
    assert all(0 < len(chunk) <= chunk_events for chunk in chunks)
    return [event for chunk in chunks for event in chunk]


@pytest.mark.parametrize(("limit", "chunk_events"), [(0, 10), (1, 10), (37, 10), (400, 7), (400, 400), (10_000, 100)])
async def test_replay_returns_the_latest_matching_events_in_arrival_order(tmp_path: Path, limit: int,
                                                                          chunk_events: int) -> None:
    rng = random.Random(limit)
    now = datetime.now(UTC).replace(microsecond=0)
    events: list[Event] = []
    for _ in range(1200):
        event = make_event(rng, now - timedelta(seconds=rng.uniform(0, 10 * 86400)))
        if rng.random() < 0.2:
            event = msgspec.structs.replace(event, sha256=f"{rng.getrandbits(256):064x}")
        events.append(event)
    store = make_store(tmp_path / "e.duckdb")
    await store.start()
    try:
        for i in range(0, len(events), 100):  # one batch at a time: arrival order is list order
            await append_in_batches(store, events[i : i + 100], size=100)
        got = await replayed(store, chunk_events, window_seconds=3600, payload_window_seconds=3 * 86400, limit=limit)
    finally:
        await store.stop()
    latest = max(e.ts for e in events)
    wanted = [e for e in events if e.ts >= latest - timedelta(seconds=3600)
              or (e.sha256 is not None and e.ts >= latest - timedelta(days=3))]
    expected = wanted[len(wanted) - limit :] if limit else []
    assert [e.id for e in got] == [e.id for e in expected]


async def test_replayed_events_leave_the_raw_record_behind(tmp_path: Path) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC)
    events = [msgspec.structs.replace(make_event(rng, now - timedelta(seconds=i)), raw='{"x": 1}') for i in range(50)]
    store = make_store(tmp_path / "e.duckdb")
    await store.start()
    try:
        await append_in_batches(store, events, size=50)
        got = await replayed(store, window_seconds=3600, payload_window_seconds=3600, limit=100)
        stored = await store.recent_events(100)
    finally:
        await store.stop()
    assert [e.id for e in got] == [e.id for e in events]  # arrival order
    assert all(e.raw is None for e in got)
    assert all(e.raw == '{"x": 1}' for e in stored)
