"""CachedDirectory over a real registry (SQLite here; the roles put it over PostgreSQL):
answers kept for the TTL, changes through it at once, changes elsewhere after the TTL."""

from __future__ import annotations

from pathlib import Path

from honeyatlas.enrichment.sensors import CachedDirectory
from honeyatlas.store.registry import SensorRegistry


def test_answers_are_kept_for_the_ttl_and_changes_through_it_apply_at_once(tmp_path: Path) -> None:
    now = [0.0]
    inner = SensorRegistry(tmp_path / "registry.sqlite3")
    cached = CachedDirectory(inner, ttl_seconds=2.0, clock=lambda: now[0])
    cached.open()
    other = SensorRegistry(tmp_path / "registry.sqlite3")  # the `sensor` command in another process
    other.open()
    try:
        _, token = cached.add("edge-01", honeypot="cowrie", lat=1.0, lon=2.0)
        sensor = cached.authenticate(token)
        assert sensor is not None and sensor.name == "edge-01"
        assert cached.authenticate("hat_0000000000000000_unknownunknownunknown") is None
        other.revoke("edge-01")
        now[0] = 1.9
        assert cached.authenticate(token) is not None  # kept: the database is not asked again
        now[0] = 2.1
        assert cached.authenticate(token) is None  # the TTL passed: the revocation is seen
        _, second = other.add("edge-02", honeypot="cowrie", lat=None, lon=None)
        assert cached.get("edge-02") is not None  # never asked before: read at once
        cached.revoke("edge-02")  # through the cache: forgotten at once
        assert cached.authenticate(second) is None
    finally:
        cached.close()
        other.close()


def test_bounded(tmp_path: Path) -> None:
    inner = SensorRegistry(tmp_path / "registry.sqlite3")
    cached = CachedDirectory(inner, ttl_seconds=60, max_entries=10)
    cached.open()
    try:
        for i in range(50):
            assert cached.get(f"nobody-{i}") is None
        assert len(cached._answers) == 10
    finally:
        cached.close()
