"""The sensor registry in PostgreSQL: what `SensorRegistry` (registry.py) does in SQLite, for
the roles, whose processes (ingest, worker, web, the `sensor` command) share one database.

Same public methods, same semantics, same token scheme: a token reads
`hat_<token id>_<secret>`, only the SHA-256 of the secret is stored and compared in constant
time; hpfeeds secrets are stored in clear, as the hpfeeds handshake requires (registry.py
says why), so the database must be readable by honeyatlas's role only. The table is
created when missing, under an advisory lock, so processes opening it at once are safe;
columns added later will be added with `ADD COLUMN IF NOT EXISTS` in `_SCHEMA`.

Synchronous (psycopg's blocking connection, one per registry, reopened if the server
dropped it): the `sensor` command and the roles call it as they call the SQLite one.
What must not live here: the token format, the checks of a new sensor and of hpfeeds settings,
and the hpfeeds channel catalogue (registry.py).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import RegistryError, StoreError
from honeyatlas.store.postgres_connect import connect_sync, describe
from honeyatlas.store.registry import TOKEN, check_new_sensor, digest, hpfeeds_settings, new_token

_LOCK = 0x6861_0010
_SCHEMA = [
    'CREATE TABLE IF NOT EXISTS sensors (name text COLLATE "C" PRIMARY KEY, honeypot text NOT NULL, '
    "lat double precision, lon double precision, label text, demo boolean NOT NULL DEFAULT false, "
    "token_id text NOT NULL UNIQUE, token_sha256 bytea NOT NULL, created_at timestamptz NOT NULL, "
    "revoked_at timestamptz, hpfeeds_ident text UNIQUE, hpfeeds_secret text, hpfeeds_channels text[])",
]
_SENSOR_COLUMNS = "name, honeypot, lat, lon, label, demo, created_at, revoked_at"
T = TypeVar("T")


class PostgresSensorRegistry:
    def __init__(self, url: str) -> None:
        self._url = url
        self._where = describe(url)
        self._con: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        con = connect_sync(self._url, self._where)
        try:
            with con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
                for statement in _SCHEMA:
                    con.execute(statement)  # type: ignore[arg-type]  # DDL of our own
        except psycopg.Error as exc:
            con.close()
            raise StoreError(f"cannot create the sensor registry at {self._where}: {exc}") from exc
        self._con = con

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
    ) -> tuple[Sensor, str]:
        """Register a sensor; returns it and its token, which is never shown again."""
        check_new_sensor(name, honeypot, lat, lon)
        token_id, token_digest, token = new_token()
        now = datetime.now(UTC)
        try:
            self._run(lambda con: con.execute(
                "INSERT INTO sensors (name, honeypot, lat, lon, label, demo, token_id, token_sha256, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [name, honeypot, lat, lon, label, demo, token_id, token_digest, now]))
        except pg_errors.UniqueViolation as exc:
            raise RegistryError(f"sensor {name!r} already exists; pick another name or revoke it first") from exc
        sensor = Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo, created_at=now)
        return sensor, token

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
        """The active sensor this bearer token belongs to, or None."""
        match = TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        row = self._run(lambda con: con.execute(
            f"SELECT {_SENSOR_COLUMNS}, token_sha256 FROM sensors WHERE token_id = %s", [token_id]).fetchone())
        if row is None:
            hmac.compare_digest(digest(secret), bytes(32))  # same work whether or not the id exists
            return None
        if not hmac.compare_digest(digest(secret), bytes(row[8])):
            return None
        sensor = _sensor(row[:8])
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
                "UPDATE sensors SET hpfeeds_ident = %s, hpfeeds_secret = %s, hpfeeds_channels = %s WHERE name = %s",
                [ident, secret, channels, name]))
        except pg_errors.UniqueViolation as exc:
            raise RegistryError(f"hpfeeds ident {ident!r} is already used by another sensor") from exc
        return ident, secret

    def hpfeeds_credentials(self, ident: str) -> tuple[Sensor, str, list[str]] | None:
        """The active sensor with this hpfeeds ident, its secret and its publish channels, or None."""
        row = self._run(lambda con: con.execute(
            f"SELECT {_SENSOR_COLUMNS}, hpfeeds_secret, hpfeeds_channels FROM sensors "
            "WHERE hpfeeds_ident = %s AND hpfeeds_secret IS NOT NULL", [ident]).fetchone())
        if row is None:
            return None
        sensor = _sensor(row[:8])
        if sensor.revoked:
            return None
        return sensor, row[8], list(row[9] or [])


def _sensor(row: tuple[Any, ...]) -> Sensor:
    name, honeypot, lat, lon, label, demo, created_at, revoked_at = row
    return Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=bool(demo),
                  created_at=created_at, revoked_at=revoked_at)
