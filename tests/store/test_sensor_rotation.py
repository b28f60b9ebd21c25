"""The sensor registry's answers for issue 12, on both backends (a SQLite file and the real
PostgreSQL server): token and hpfeeds secret rotation with a grace period, a revoked name
registered again, and the per-sensor settings (formats, rate, burst, syslog sources)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from honeyatlas.enrichment.sensors import CachedDirectory, Sensor, SensorSettings
from honeyatlas.errors import RegistryError
from honeyatlas.store.postgres_registry import PostgresSensorRegistry
from honeyatlas.store.registry import SensorRegistry
from tests.store import backends

Registry = SensorRegistry | PostgresSensorRegistry


Backend = backends.Backend[Registry]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backends.backend_of(request, tmp_path / "registry.sqlite3", SensorRegistry, PostgresSensorRegistry)


def name_of(sensor: Sensor | None) -> str | None:
    return None if sensor is None else sensor.name


def test_rotate_keeps_the_old_token_for_the_grace(backend: Backend) -> None:
    registry = backend.open()
    _, first = registry.add("edge-01", honeypot="cowrie", lat=1.0, lon=2.0)
    second, no_secret = registry.rotate("edge-01", grace_seconds=0.5)
    assert no_secret is None  # no hpfeeds credentials, no hpfeeds secret
    assert second != first and second.startswith("hat_")
    other = backend.open()  # the server, in another process
    assert name_of(other.authenticate(first)) == name_of(other.authenticate(second)) == "edge-01"
    assert other.authenticate(first[:-1] + ("A" if first[-1] != "A" else "B")) is None  # the secret is still checked
    time.sleep(0.6)
    assert other.authenticate(first) is None and name_of(other.authenticate(second)) == "edge-01"

    third, _ = registry.rotate("edge-01")  # default grace: a day
    assert name_of(other.authenticate(second)) == name_of(other.authenticate(third)) == "edge-01"
    fourth, _ = registry.rotate("edge-01", grace_seconds=0)  # one generation kept: second ends now
    assert other.authenticate(second) is None and other.authenticate(third) is None
    assert name_of(other.authenticate(fourth)) == "edge-01"

    registry.revoke("edge-01")  # ends every generation at once
    assert other.authenticate(fourth) is None
    with pytest.raises(RegistryError, match="sensor 'edge-01' is revoked; add it again to give it a new token"):
        registry.rotate("edge-01")
    with pytest.raises(RegistryError, match="no sensor named 'nobody'"):
        registry.rotate("nobody")
    registry.add("edge-02", honeypot="cowrie", lat=None, lon=None)
    with pytest.raises(RegistryError, match="invalid grace"):
        registry.rotate("edge-02", grace_seconds=-1)


def test_rotate_gives_a_new_hpfeeds_secret_and_keeps_the_old_one_for_the_grace(backend: Backend) -> None:
    registry = backend.open()
    registry.add("cowrie-01", honeypot="cowrie", lat=None, lon=None)
    ident, old = registry.enable_hpfeeds("cowrie-01")
    _, new = registry.rotate("cowrie-01", grace_seconds=0.5)
    assert new is not None and new != old
    sensor, accepted, channels = registry.hpfeeds_secrets(ident) or pytest.fail("not found")
    assert (sensor.name, accepted, channels) == ("cowrie-01", [new, old], ["cowrie.sessions", "kippo.sessions"])
    assert registry.hpfeeds_credentials(ident)[1] == new  # type: ignore[index]  # the current one
    time.sleep(0.6)
    assert registry.hpfeeds_secrets(ident)[1] == [new]  # type: ignore[index]
    _, newer = registry.rotate("cowrie-01", grace_seconds=60)
    _, replaced = registry.enable_hpfeeds("cowrie-01")  # an explicit new secret: no grace for the old ones
    assert registry.hpfeeds_secrets(ident)[1] == [replaced]  # type: ignore[index]
    assert newer not in (replaced, new)
    registry.revoke("cowrie-01")
    assert registry.hpfeeds_secrets(ident) is None and registry.hpfeeds_credentials(ident) is None


def test_a_revoked_name_can_be_registered_again(backend: Backend) -> None:
    registry = backend.open()
    _, old = registry.add("edge-01", honeypot="cowrie", lat=1.0, lon=2.0, label="first")
    registry.enable_hpfeeds("edge-01")
    with pytest.raises(RegistryError, match="sensor 'edge-01' already exists; pick another name or revoke it first"):
        registry.add("edge-01", honeypot="dionaea", lat=None, lon=None)
    registry.revoke("edge-01")
    sensor, new = registry.add("edge-01", honeypot="dionaea", lat=3.0, lon=4.0, label="second")
    assert (sensor.honeypot, sensor.revoked) == ("dionaea", False)
    assert registry.authenticate(old) is None and name_of(registry.authenticate(new)) == "edge-01"
    got = registry.get("edge-01")
    assert got is not None and (got.honeypot, got.label, got.revoked) == ("dionaea", "second", False)
    assert registry.hpfeeds_credentials("edge-01") is None  # the old credentials did not carry over
    assert registry.enable_hpfeeds("edge-01")[0] == "edge-01"  # and their ident is free again
    # The revoked sensor's row is kept, without its credentials.
    history = backend.stored("SELECT name, honeypot, label, revoked_at IS NOT NULL FROM revoked_sensors")
    assert [tuple(row) for row in history] == [("edge-01", "cowrie", "first", True)]
    assert [s.name for s in registry.list()] == ["edge-01"]


def test_settings_are_stored_validated_and_answered_with_the_sensor(backend: Backend) -> None:
    registry = backend.open()
    sensor, token = registry.add("edge-01", honeypot="cowrie", lat=None, lon=None)
    assert (sensor.formats, sensor.rate_per_second, sensor.burst, sensor.syslog_sources) == (None, None, None, ())
    known = ["cowrie", "cowrie-cef", "cowrie-sessions", "dionaea", "event", "auto"]
    assert sensor.allowed_formats(known) == {"cowrie", "cowrie-cef", "cowrie-sessions", "auto", "event"}

    chosen = SensorSettings(formats=("cowrie", "event", "cowrie"), rate_per_second=50.0, burst=200,
                            syslog_sources=("192.0.2.7", "198.51.100.9/24", "2001:db8::1/48"))
    configured = registry.configure("edge-01", chosen)
    expected = (("cowrie", "event"), 50.0, 200, ("192.0.2.7/32", "198.51.100.0/24", "2001:db8::/48"))
    for seen in (configured, registry.get("edge-01"), registry.authenticate(token), backend.open().list()[0]):
        assert seen is not None
        assert (seen.formats, seen.rate_per_second, seen.burst, seen.syslog_sources) == expected
    assert configured.allowed_formats(known) == {"cowrie", "event"}
    assert registry.configure("edge-01", SensorSettings()).settings == SensorSettings()  # back to the defaults

    other, _ = registry.add("edge-02", honeypot="dionaea", lat=None, lon=None,
                            settings=SensorSettings(rate_per_second=5, syslog_sources=("10.0.0.1",)))
    assert (other.rate_per_second, other.syslog_sources) == (5, ("10.0.0.1/32",))
    assert registry.get("edge-02").settings == other.settings  # type: ignore[union-attr]

    for bad, error in [
        (SensorSettings(formats=()), "invalid formats"),
        (SensorSettings(formats=("cowrie", "no/such")), "invalid formats 'no/such'"),
        (SensorSettings(rate_per_second=0), "invalid rate 0"),
        (SensorSettings(burst=0), "invalid burst 0"),
        (SensorSettings(syslog_sources=("example.org",)), "invalid syslog source 'example.org'"),
    ]:
        with pytest.raises(RegistryError, match=error):
            registry.configure("edge-02", bad)
    with pytest.raises(RegistryError, match="no sensor named 'nobody'"):
        registry.configure("nobody", SensorSettings())


def test_the_cached_directory_passes_the_new_operations_through(backend: Backend) -> None:
    cached = CachedDirectory(backend.open(), ttl_seconds=60)
    _, first = cached.add("edge-01", honeypot="cowrie", lat=None, lon=None,
                          settings=SensorSettings(burst=10))
    assert cached.get("edge-01").burst == 10  # type: ignore[union-attr]
    cached.configure("edge-01", SensorSettings(burst=20))
    assert cached.get("edge-01").burst == 20  # type: ignore[union-attr]  # changed through it: at once
    assert cached.authenticate(first) is not None
    second, _ = cached.rotate("edge-01", grace_seconds=0)
    assert cached.authenticate(first) is None and cached.authenticate(second) is not None
