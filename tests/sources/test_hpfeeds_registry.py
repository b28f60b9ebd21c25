"""hpfeeds credentials in the sensor registry: defaults, rotation, revocation, file mode, and
registry files written before the hpfeeds columns existed."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from honeyatlas.errors import RegistryError
from honeyatlas.store.registry import SensorRegistry

OLD_SCHEMA = """CREATE TABLE sensors (
    name TEXT PRIMARY KEY, honeypot TEXT NOT NULL, lat REAL, lon REAL, label TEXT,
    demo INTEGER NOT NULL DEFAULT 0, token_id TEXT NOT NULL UNIQUE, token_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL, revoked_at TEXT)"""


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SensorRegistry]:
    reg = SensorRegistry(tmp_path / "registry.sqlite3")
    reg.open()
    yield reg
    reg.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_registry_file_is_owner_only(registry: SensorRegistry, tmp_path: Path) -> None:
    registry.add("cowrie-01", honeypot="cowrie", lat=None, lon=None)
    registry.enable_hpfeeds("cowrie-01")
    for path in tmp_path.glob("registry.sqlite3*"):
        assert mode(path) == 0o600, path


def test_defaults_rotation_and_lookup(registry: SensorRegistry) -> None:
    registry.add("cowrie-01", honeypot="cowrie", lat=1.0, lon=2.0)
    registry.add("trap-01", honeypot="trapbox", lat=None, lon=None)
    ident, secret = registry.enable_hpfeeds("cowrie-01")
    assert ident == "cowrie-01" and len(secret) == 32
    sensor, stored, channels = registry.hpfeeds_credentials("cowrie-01") or pytest.fail("not found")
    assert (sensor.name, sensor.lat, stored, channels) == ("cowrie-01", 1.0, secret, ["cowrie.sessions", "kippo.sessions"])
    assert registry.enable_hpfeeds("trap-01", ident="trap-ident")[0] == "trap-ident"
    assert registry.hpfeeds_credentials("trap-ident")[2] == ["*"]  # type: ignore[index]
    assert registry.hpfeeds_credentials("trap-01") is None  # the ident, not the name, is looked up
    _, rotated = registry.enable_hpfeeds("cowrie-01", ["cowrie.sessions"])
    assert rotated != secret
    assert registry.hpfeeds_credentials("cowrie-01")[1:] == (rotated, ["cowrie.sessions"])  # type: ignore[index]
    with pytest.raises(RegistryError, match="already used"):
        registry.enable_hpfeeds("cowrie-01", ident="trap-ident")
    with pytest.raises(RegistryError, match="no sensor"):
        registry.enable_hpfeeds("nobody")
    with pytest.raises(RegistryError, match="invalid hpfeeds channels"):
        registry.enable_hpfeeds("cowrie-01", [])
    registry.revoke("cowrie-01")
    assert registry.hpfeeds_credentials("cowrie-01") is None
    with pytest.raises(RegistryError, match="revoked"):
        registry.enable_hpfeeds("cowrie-01")


def test_a_registry_file_from_before_hpfeeds_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    con = sqlite3.connect(path)
    con.execute(OLD_SCHEMA)
    con.execute(
        "INSERT INTO sensors (name, honeypot, token_id, token_sha256, created_at) VALUES (?, ?, ?, ?, ?)",
        ("old-01", "dionaea", "0123456789abcdef", hashlib.sha256(b"s" * 43).digest(), "2025-01-01T00:00:00+00:00"),
    )
    con.commit()
    con.close()
    path.chmod(0o644)
    registry = SensorRegistry(path)
    registry.open()
    try:
        assert registry.authenticate("hat_0123456789abcdef_" + "s" * 43) is not None  # old tokens still work
        assert registry.hpfeeds_credentials("old-01") is None
        ident, secret = registry.enable_hpfeeds("old-01")
        assert registry.hpfeeds_credentials(ident)[1] == secret  # type: ignore[index]
        assert "dionaea.capture" in registry.hpfeeds_credentials(ident)[2]  # type: ignore[index]
        assert mode(path) == 0o600  # tightened once it holds a secret
    finally:
        registry.close()
    again = SensorRegistry(path)  # reopening a migrated file adds nothing twice
    again.open()
    assert again.hpfeeds_credentials("old-01") is not None
    again.close()
