"""The sensor registry in PostgreSQL: what `SensorRegistry` (registry.py) does in SQLite, for
the roles, whose processes (ingest, worker, web, the `sensor` command) share one database.

Same public methods, same semantics, same token scheme: a token reads
`hat_<token id>_<secret>`, only the SHA-256 of the secret is stored and compared in constant
time; hpfeeds secrets are stored in clear, as the hpfeeds handshake requires (registry.py
says why), so the database must be readable by honeyatlas's role only. The table is
created when missing, under an advisory lock, so processes opening it at once are safe;
columns added later are added with `ADD COLUMN IF NOT EXISTS` in `_SCHEMA`. Rotation with a
grace, re-registering a revoked name (its row moves to `revoked_sensors`) and per-sensor
settings work as registry.py says.

Synchronous (psycopg's blocking connection, one per registry, reopened if the server
dropped it): the `sensor` command and the roles call it as they call the SQLite one.
What must not live here: the token format, the checks of a new sensor and of hpfeeds settings,
the hpfeeds channel catalogue, the checks of settings and rotations (registry.py).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from honeyatlas.enrichment.sensors import Sensor, SensorSettings
from honeyatlas.errors import RegistryError, StoreError
from honeyatlas.store.postgres_connect import connect_sync, connect_with_schema, describe
from honeyatlas.store.registry import (
    DEFAULT_GRACE_SECONDS,
    SENSOR_WIDTH,
    TOKEN,
    check_new_sensor,
    check_rotation,
    check_settings,
    digest,
    hpfeeds_settings,
    new_token,
    previous_valid,
    settings_fields,
)

_LOCK = 0x6861_0010
_SCHEMA = [
    'CREATE TABLE IF NOT EXISTS sensors (name text COLLATE "C" PRIMARY KEY, honeypot text NOT NULL, '
    "lat double precision, lon double precision, label text, demo boolean NOT NULL DEFAULT false, "
    "token_id text NOT NULL UNIQUE, token_sha256 bytea NOT NULL, created_at timestamptz NOT NULL, "
    "revoked_at timestamptz, hpfeeds_ident text UNIQUE, hpfeeds_secret text, hpfeeds_channels text[])",
    "ALTER TABLE sensors ADD COLUMN IF NOT EXISTS formats text[], "
    "ADD COLUMN IF NOT EXISTS rate_per_second double precision, ADD COLUMN IF NOT EXISTS burst integer, "
    "ADD COLUMN IF NOT EXISTS syslog_sources text[] NOT NULL DEFAULT '{}', "
    "ADD COLUMN IF NOT EXISTS previous_token_id text, ADD COLUMN IF NOT EXISTS previous_token_sha256 bytea, "
    "ADD COLUMN IF NOT EXISTS previous_hpfeeds_secret text, ADD COLUMN IF NOT EXISTS previous_expires_at timestamptz",
    "CREATE INDEX IF NOT EXISTS sensors_previous_token ON sensors (previous_token_id)",
    'CREATE TABLE IF NOT EXISTS revoked_sensors (name text COLLATE "C" NOT NULL, honeypot text NOT NULL, '
    "lat double precision, lon double precision, label text, demo boolean NOT NULL, "
    "created_at timestamptz NOT NULL, revoked_at timestamptz NOT NULL, replaced_at timestamptz NOT NULL)",
]
_SENSOR_COLUMNS = (
    "name, honeypot, lat, lon, label, demo, created_at, revoked_at, formats, rate_per_second, burst, syslog_sources"
)
T = TypeVar("T")


class PostgresSensorRegistry:
    def __init__(self, url: str) -> None:
        self._url = url
        self._where = describe(url)
        self._con: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._con = connect_with_schema(self._url, self._where, lock=_LOCK, schema=_SCHEMA, what="the sensor registry")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(connection)` under the lock, on a connection opened again if the server dropped it."""
        with self._lock:
            if self._con is None:
                raise RegistryError("sensor registry is not open")
            if self._con.broken or self._con.closed:
                self._con = connect_sync(self._url, self._where)
            try:
                return work(self._con)
            except (pg_errors.UniqueViolation, RegistryError):
                raise
            except psycopg.Error as exc:
                raise StoreError(f"sensor registry at {self._where}: {' '.join(str(exc).split())}") from exc

    def add(
        self,
        name: str,
        *,
        honeypot: str,
        lat: float | None,
        lon: float | None,
        label: str | None = None,
        demo: bool = False,
        settings: SensorSettings | None = None,
    ) -> tuple[Sensor, str]:
        """Register a sensor (again, if its name belongs to a revoked one); returns it and its
        token, which is never shown again."""
        check_new_sensor(name, honeypot, lat, lon)
        settings = check_settings(settings or SensorSettings())
        token_id, token_digest, token = new_token()
        now = datetime.now(UTC)

        def insert(con: psycopg.Connection[Any]) -> None:
            with con.transaction():
                con.execute("INSERT INTO revoked_sensors SELECT name, honeypot, lat, lon, label, demo, created_at, "
                            "revoked_at, %s FROM sensors WHERE name = %s AND revoked_at IS NOT NULL", [now, name])
                con.execute("DELETE FROM sensors WHERE name = %s AND revoked_at IS NOT NULL", [name])
                con.execute(
                    "INSERT INTO sensors (name, honeypot, lat, lon, label, demo, token_id, token_sha256, created_at, "
                    "formats, rate_per_second, burst, syslog_sources) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [name, honeypot, lat, lon, label, demo, token_id, token_digest, now, *_settings_row(settings)])

        try:
            self._run(insert)
        except pg_errors.UniqueViolation as exc:
            raise RegistryError(f"sensor {name!r} already exists; pick another name or revoke it first") from exc
        sensor = Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo, created_at=now,
                        **settings_fields(settings))
        return sensor, token

    def configure(self, name: str, settings: SensorSettings) -> Sensor:
        """Replace a sensor's settings."""
        settings = check_settings(settings)
        self._run(lambda con: con.execute(
            "UPDATE sensors SET formats = %s, rate_per_second = %s, burst = %s, syslog_sources = %s WHERE name = %s",
            [*_settings_row(settings), name]))
        sensor = self.get(name)
        if sensor is None:
            raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
        return sensor

    def rotate(self, name: str, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> tuple[str, str | None]:
        """As SensorRegistry.rotate: a new token (and hpfeeds secret); the old ones last the grace."""
        check_rotation(name, self.get(name), grace_seconds)
        token_id, token_digest, token = new_token()
        secret = secrets.token_urlsafe(24)
        until = datetime.now(UTC) + timedelta(seconds=grace_seconds)
        row = self._run(lambda con: con.execute(
            "UPDATE sensors SET previous_token_id = token_id, previous_token_sha256 = token_sha256, "
            "previous_hpfeeds_secret = hpfeeds_secret, previous_expires_at = %s, token_id = %s, token_sha256 = %s, "
            "hpfeeds_secret = CASE WHEN hpfeeds_secret IS NULL THEN NULL ELSE %s END "
            "WHERE name = %s AND revoked_at IS NULL RETURNING hpfeeds_secret",
            [until, token_id, token_digest, secret, name]).fetchone())
        if row is None:  # revoked since the check
            check_rotation(name, self.get(name), grace_seconds)
        return token, (secret if row and row[0] == secret else None)

    def revoke(self, name: str) -> Sensor:
        self._run(lambda con: con.execute(
            "UPDATE sensors SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL", [datetime.now(UTC), name]))
        sensor = self.get(name)  # revoked now, or earlier (revoking twice keeps the first time)
        if sensor is None:
            raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
        return sensor

    def get(self, name: str) -> Sensor | None:
        row = self._run(lambda con: con.execute(
            f"SELECT {_SENSOR_COLUMNS} FROM sensors WHERE name = %s", [name]).fetchone())
        return None if row is None else _sensor(row)

    def list(self) -> list[Sensor]:
        rows = self._run(lambda con: con.execute(f"SELECT {_SENSOR_COLUMNS} FROM sensors ORDER BY name").fetchall())
        return [_sensor(r) for r in rows]

    def authenticate(self, token: str) -> Sensor | None:
        """The active sensor this bearer token belongs to (current, or rotated out within the
        grace), or None."""
        match = TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        row = self._run(lambda con: con.execute(
            f"SELECT {_SENSOR_COLUMNS}, token_id, token_sha256, previous_token_sha256, previous_expires_at "
            "FROM sensors WHERE token_id = %s OR previous_token_id = %s", [token_id, token_id]).fetchone())
        if row is None:
            hmac.compare_digest(digest(secret), bytes(32))  # same work whether or not the id exists
            return None
        current_id, current, previous, previous_until = row[SENSOR_WIDTH:]
        expected = current if current_id == token_id else previous
        if not hmac.compare_digest(digest(secret), bytes(expected)):
            return None
        if current_id != token_id and not previous_valid(previous_until):
            return None
        sensor = _sensor(row[:SENSOR_WIDTH])
        return None if sensor.revoked else sensor

    def enable_hpfeeds(
        self, name: str, channels: list[str] | None = None, *, ident: str | None = None
    ) -> tuple[str, str]:
        """Give a sensor hpfeeds credentials; returns (ident, secret), the secret shown only now.
        As SensorRegistry.enable_hpfeeds: calling it again replaces secret, ident and channels."""
        ident, channels = hpfeeds_settings(name, self.get(name), channels, ident)
        secret = secrets.token_urlsafe(24)
        try:
            self._run(lambda con: con.execute(
                "UPDATE sensors SET hpfeeds_ident = %s, hpfeeds_secret = %s, hpfeeds_channels = %s, "
                "previous_hpfeeds_secret = NULL WHERE name = %s",
                [ident, secret, channels, name]))
        except pg_errors.UniqueViolation as exc:
            raise RegistryError(f"hpfeeds ident {ident!r} is already used by another sensor") from exc
        return ident, secret

    def hpfeeds_credentials(self, ident: str) -> tuple[Sensor, str, list[str]] | None:
        """The active sensor with this hpfeeds ident, its secret and its publish channels, or None."""
        found = self.hpfeeds_secrets(ident)
        return None if found is None else (found[0], found[1][0], found[2])

    def hpfeeds_secrets(self, ident: str) -> tuple[Sensor, list[str], list[str]] | None:
        """As SensorRegistry.hpfeeds_secrets: the current secret, then the rotated-out one in its grace."""
        row = self._run(lambda con: con.execute(
            f"SELECT {_SENSOR_COLUMNS}, hpfeeds_secret, hpfeeds_channels, previous_hpfeeds_secret, "
            "previous_expires_at FROM sensors WHERE hpfeeds_ident = %s AND hpfeeds_secret IS NOT NULL",
            [ident]).fetchone())
        if row is None:
            return None
        sensor = _sensor(row[:SENSOR_WIDTH])
        if sensor.revoked:
            return None
        secret, channels, previous, previous_until = row[SENSOR_WIDTH:]
        accepted = [secret, previous] if previous and previous_valid(previous_until) else [secret]
        return sensor, accepted, list(channels or [])


def _settings_row(settings: SensorSettings) -> list[Any]:
    formats = None if settings.formats is None else list(settings.formats)
    return [formats, settings.rate_per_second, settings.burst, list(settings.syslog_sources)]


def _sensor(row: tuple[Any, ...]) -> Sensor:
    name, honeypot, lat, lon, label, demo, created_at, revoked_at, formats, rate, burst, sources = row
    return Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=bool(demo),
                  created_at=created_at, revoked_at=revoked_at,
                  formats=None if formats is None else tuple(formats), rate_per_second=rate, burst=burst,
                  syslog_sources=tuple(sources or ()))
