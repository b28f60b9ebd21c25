"""The sensor registry: who may send events, as which honeypot, from where.

Kept in SQLite (`registry.sqlite3` in the data directory, WAL mode) so that the running
server and the `honeyatlas sensor` command can both use it at once. Tokens are shown once at
creation and stored as SHA-256 digests of their secret part; a token reads
`hat_<token id>_<secret>`, the id finds the row and the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import RegistryError

SENSOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKEN = re.compile(r"^hat_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sensors (
        name TEXT PRIMARY KEY,
        honeypot TEXT NOT NULL,
        lat REAL,
        lon REAL,
        label TEXT,
        demo INTEGER NOT NULL DEFAULT 0,
        token_id TEXT NOT NULL UNIQUE,
        token_sha256 BLOB NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SensorRegistry:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=10000")
        for statement in _SCHEMA:
            con.execute(statement)
        self._con = con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise RegistryError("sensor registry is not open")
        return self._con

    def add(
        self,
        name: str,
        *,
        honeypot: str,
        lat: float | None,
        lon: float | None,
        label: str | None = None,
        demo: bool = False,
    ) -> tuple[Sensor, str]:
        """Register a sensor; returns it and its token, which is never shown again."""
        if not SENSOR_NAME.match(name):
            raise RegistryError(
                f"invalid sensor name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if not re.match(r"^[a-z0-9][a-z0-9._-]{0,31}$", honeypot):
            raise RegistryError(f"invalid honeypot type {honeypot!r}: use a short lowercase name such as cowrie")
        if (lat is None) != (lon is None) or (
            lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180)
        ):
            raise RegistryError("invalid location: give LAT,LON with -90<=LAT<=90 and -180<=LON<=180")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self._lock:
            try:
                self._db().execute(
                    "INSERT INTO sensors (name, honeypot, lat, lon, label, demo, token_id, token_sha256, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, honeypot, lat, lon, label, int(demo), token_id, _digest(secret), now.isoformat()),
                )
            except sqlite3.IntegrityError as exc:
                raise RegistryError(f"sensor {name!r} already exists; pick another name or revoke it first") from exc
        sensor = Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo, created_at=now)
        return sensor, f"hat_{token_id}_{secret}"

    def revoke(self, name: str) -> Sensor:
        with self._lock:
            cursor = self._db().execute(
                "UPDATE sensors SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), name),
            )
        if cursor.rowcount == 0:
            existing = self.get(name)
            if existing is None:
                raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
            return existing
        sensor = self.get(name)
        assert sensor is not None
        return sensor

    def get(self, name: str) -> Sensor | None:
        with self._lock:
            row = self._db().execute(
                "SELECT name, honeypot, lat, lon, label, demo, created_at, revoked_at FROM sensors WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else self._sensor(row)

    def list(self) -> list[Sensor]:
        with self._lock:
            rows = self._db().execute(
                "SELECT name, honeypot, lat, lon, label, demo, created_at, revoked_at FROM sensors ORDER BY name"
            ).fetchall()
        return [self._sensor(r) for r in rows]

    def authenticate(self, token: str) -> Sensor | None:
        """The active sensor this bearer token belongs to, or None."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        with self._lock:
            row = self._db().execute(
                "SELECT name, honeypot, lat, lon, label, demo, created_at, revoked_at, token_sha256"
                " FROM sensors WHERE token_id = ?",
                (token_id,),
            ).fetchone()
        if row is None:
            hmac.compare_digest(_digest(secret), bytes(32))  # same work whether or not the id exists
            return None
        if not hmac.compare_digest(_digest(secret), row[8]):
            return None
        sensor = self._sensor(row[:8])
        return None if sensor.revoked else sensor

    @staticmethod
    def _sensor(row: tuple) -> Sensor:
        name, honeypot, lat, lon, label, demo, created_at, revoked_at = row
        return Sensor(
            name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=bool(demo),
            created_at=_time(created_at), revoked_at=_time(revoked_at),
        )
