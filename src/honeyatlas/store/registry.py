"""The sensor registry: who may send events, as which honeypot, from where.

Kept in SQLite (`registry.sqlite3` in the data directory, WAL mode) so that the running
server and the `honeyatlas sensor` command can both use it at once. Tokens are shown once at
creation and stored as SHA-256 digests of their secret part; a token reads
`hat_<token id>_<secret>`, the id finds the row and the secret is compared in constant time.

hpfeeds credentials are the exception: they are stored in clear. The hpfeeds handshake
proves knowledge of the secret with SHA1(nonce ‖ secret) over a nonce the server picks per
connection, so the server must hold the secret itself; a stored digest could not be checked
against a fresh nonce. The registry file is therefore created with mode 0600 (and tightened
to 0600 when hpfeeds is enabled on an older file): it must be readable by the server's user
only. Each sensor has at most one hpfeeds ident (default: its name), a secret
(`secrets.token_urlsafe(24)`, shown once by `enable_hpfeeds`, replaced when called again) and
the channels it may publish to (default: the standard channels of its honeypot type, or "*").
Columns added after the first release are added with ALTER TABLE when missing, so older
registry files keep working.

Rotation (`rotate`): a new token (and a new hpfeeds secret, when the sensor has hpfeeds
credentials) replaces the current one, which moves to the `previous_*` columns and keeps
working until `previous_expires_at` (the grace). One previous generation is kept: rotating
again within the grace ends the oldest at once. Revoking ends all of them at once.

A revoked name can be registered again: the revoked row (without its credentials) moves to
`revoked_sensors`, with when it was replaced, and the name is free. Events keep the name
they were stored under, so the history of both sensors stays in the store.

Per-sensor settings (`SensorSettings`): `formats` and `syslog_sources` as JSON arrays,
`rate_per_second` and `burst`; NULL means "the default" (store the absence, so a changed
default applies to every sensor that did not choose). They come back with every `Sensor`,
so a source reads them from the same (cached) lookup that authenticated the sensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from honeyatlas.enrichment.sensors import Sensor, SensorSettings
from honeyatlas.errors import RegistryError
from honeyatlas.store.sqlite import connect_shared

SENSOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HONEYPOT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
TOKEN = re.compile(r"^hat_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")
FORMAT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_RATE_PER_SECOND = 1_000_000.0
MAX_BURST = 10_000_000
DEFAULT_GRACE_SECONDS = 86400.0

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
    """CREATE TABLE IF NOT EXISTS revoked_sensors (
        name TEXT NOT NULL,
        honeypot TEXT NOT NULL,
        lat REAL,
        lon REAL,
        label TEXT,
        demo INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT NOT NULL,
        replaced_at TEXT NOT NULL
    )""",
]
# Added later: (column, definition), added to older files by ALTER TABLE when missing.
_ADDED_COLUMNS = [
    ("hpfeeds_ident", "TEXT"),
    ("hpfeeds_secret", "TEXT"),
    ("hpfeeds_channels", "TEXT"),  # JSON array of channel names, "*" for any
    ("formats", "TEXT"),  # JSON array; NULL: the honeypot's formats and auto
    ("rate_per_second", "REAL"),  # NULL: the configured default
    ("burst", "INTEGER"),  # NULL: the configured default
    ("syslog_sources", "TEXT"),  # JSON array of networks; NULL: none
    ("previous_token_id", "TEXT"),
    ("previous_token_sha256", "BLOB"),
    ("previous_hpfeeds_secret", "TEXT"),
    ("previous_expires_at", "TEXT"),
]
_INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS sensors_hpfeeds_ident ON sensors (hpfeeds_ident)",
    "CREATE INDEX IF NOT EXISTS sensors_previous_token ON sensors (previous_token_id)",
]

ANY_CHANNEL = "*"
# The standard MHN/CHN channels each honeypot type publishes (formats.md §1.3); a honeypot
# type not listed here may publish to any channel unless channels are given.
HPFEEDS_CHANNELS: dict[str, tuple[str, ...]] = {
    "cowrie": ("cowrie.sessions", "kippo.sessions"),
    "kippo": ("kippo.sessions",),
    "dionaea": (
        "dionaea.connections", "dionaea.capture", "dionaea.dcerpcrequests", "dionaea.shellcodeprofiles",
        "mwbinary.dionaea.sensorunique",
    ),
    "glastopf": ("glastopf.events", "glastopf.files"),
    "conpot": ("conpot.events",),
    "snort": ("snort.alerts",),
    "suricata": ("suricata.events",),
    "opencanary": ("opencanary.events",),
    "p0f": ("p0f.events",),
    "amun": ("amun.events",),
    "wordpot": ("wordpot.events",),
    "shockpot": ("shockpot.events",),
    "elastichoney": ("elastichoney.events",),
    "beeswarm": ("beeswarm.hive",),
    "agave": ("agave.events",),
    "drupot": ("drupot.events",),
}
_SENSOR_COLUMNS = (
    "name, honeypot, lat, lon, label, demo, created_at, revoked_at, formats, rate_per_second, burst, syslog_sources"
)
SENSOR_WIDTH = len(_SENSOR_COLUMNS.split(","))  # a row's sensor part: row[:SENSOR_WIDTH]


def digest(secret: str) -> bytes:
    """What the registry stores of a token's secret."""
    return hashlib.sha256(secret.encode()).digest()


def check_new_sensor(name: str, honeypot: str, lat: float | None, lon: float | None) -> None:
    """Refuse, with a RegistryError that says what to give instead, a sensor `add` must not register."""
    if not SENSOR_NAME.match(name):
        raise RegistryError(
            f"invalid sensor name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not HONEYPOT_TYPE.match(honeypot):
        raise RegistryError(f"invalid honeypot type {honeypot!r}: use a short lowercase name such as cowrie")
    if (lat is None) != (lon is None) or (
        lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180)
    ):
        raise RegistryError("invalid location: give LAT,LON with -90<=LAT<=90 and -180<=LON<=180")


def new_token() -> tuple[str, bytes, str]:
    """A new bearer token: (token id, digest of its secret: what is stored, the token: shown once)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return token_id, digest(secret), f"hat_{token_id}_{secret}"


def hpfeeds_settings(
    name: str, sensor: Sensor | None, channels: list[str] | None, ident: str | None
) -> tuple[str, list[str]]:
    """The (ident, channels) `enable_hpfeeds` gives sensor `name` (None: no such sensor),
    defaults filled in; a RegistryError when they cannot be given."""
    if sensor is None:
        raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
    if sensor.revoked:
        raise RegistryError(f"sensor {name!r} is revoked; add a new sensor instead")
    ident = name if ident is None else ident
    if not ident or len(ident.encode("utf-8")) > 255 or any(ord(c) < 32 for c in ident):
        raise RegistryError(f"invalid hpfeeds ident {ident!r}: use 1-255 bytes of printable UTF-8")
    if channels is None:
        channels = list(HPFEEDS_CHANNELS.get(sensor.honeypot, (ANY_CHANNEL,)))
    bad = [c for c in channels if not c or len(c.encode("utf-8")) > 255]
    if not channels or bad:
        raise RegistryError(f"invalid hpfeeds channels {channels!r}: give 1-255 byte names, or '*' for any")
    return ident, channels


def check_settings(settings: SensorSettings) -> SensorSettings:
    """The settings, normalised (formats once each, networks in their canonical form); a
    RegistryError that says what to give instead when one is invalid."""
    formats = settings.formats
    if formats is not None:
        formats = tuple(dict.fromkeys(formats))
        bad = [f for f in formats if not FORMAT_NAME.match(f)]
        if not formats or bad:
            raise RegistryError(f"invalid formats {','.join(bad or formats)!r}: give format names such as "
                                "cowrie,cowrie-sessions,auto, or default")
    rate, burst = settings.rate_per_second, settings.burst
    if rate is not None and not 0 < rate <= MAX_RATE_PER_SECOND:
        raise RegistryError(f"invalid rate {rate:g}: give events per second above 0 and at most "
                            f"{MAX_RATE_PER_SECOND:g}, or default")
    if burst is not None and not 1 <= burst <= MAX_BURST:
        raise RegistryError(f"invalid burst {burst}: give a number of events from 1 to {MAX_BURST}, or default")
    networks = []
    for source in settings.syslog_sources:
        try:
            networks.append(str(ipaddress.ip_network(source.strip(), strict=False)))
        except ValueError:
            raise RegistryError(f"invalid syslog source {source!r}: give an address or network such as "
                                "192.0.2.7 or 198.51.100.0/24") from None
    return SensorSettings(formats=formats, rate_per_second=rate, burst=burst,
                          syslog_sources=tuple(dict.fromkeys(networks)))


def check_rotation(name: str, sensor: Sensor | None, grace_seconds: float) -> None:
    if sensor is None:
        raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
    if sensor.revoked:
        raise RegistryError(f"sensor {name!r} is revoked; add it again to give it a new token")
    if not 0 <= grace_seconds <= 365 * 86400:
        raise RegistryError(f"invalid grace {grace_seconds:g} s: give 0 to 31536000 seconds")


def previous_valid(expires_at: datetime | None) -> bool:
    """Whether a rotated-out credential is still within its grace."""
    return expires_at is not None and datetime.now(UTC) < expires_at


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _json_tuple(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


class SensorRegistry:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        con = connect_shared(self._path)  # owner-only from the start: it holds hpfeeds secrets (see above)
        for statement in _SCHEMA:
            con.execute(statement)
        present = {row[1] for row in con.execute("PRAGMA table_info(sensors)")}
        for column, definition in _ADDED_COLUMNS:
            if column not in present:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    con.execute(f"ALTER TABLE sensors ADD COLUMN {column} {definition}")
        for statement in _INDEXES:
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

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db().execute(sql, params).fetchone()

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
        """Register a sensor (again, if its name belongs to a revoked one: see above); returns
        it and its token, which is never shown again."""
        check_new_sensor(name, honeypot, lat, lon)
        settings = check_settings(settings or SensorSettings())
        token_id, token_digest, token = new_token()
        now = datetime.now(UTC)
        with self._lock:
            con = self._db()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("INSERT INTO revoked_sensors SELECT name, honeypot, lat, lon, label, demo, created_at,"
                            " revoked_at, ? FROM sensors WHERE name = ? AND revoked_at IS NOT NULL",
                            (now.isoformat(), name))
                con.execute("DELETE FROM sensors WHERE name = ? AND revoked_at IS NOT NULL", (name,))
                con.execute(
                    "INSERT INTO sensors (name, honeypot, lat, lon, label, demo, token_id, token_sha256, created_at,"
                    " formats, rate_per_second, burst, syslog_sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, honeypot, lat, lon, label, int(demo), token_id, token_digest, now.isoformat(),
                     *self._settings_row(settings)),
                )
            except sqlite3.IntegrityError as exc:
                con.execute("ROLLBACK")
                raise RegistryError(f"sensor {name!r} already exists; pick another name or revoke it first") from exc
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        sensor = Sensor(name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo, created_at=now,
                        **settings_fields(settings))
        return sensor, token

    @staticmethod
    def _settings_row(settings: SensorSettings) -> tuple[Any, ...]:
        formats = None if settings.formats is None else json.dumps(list(settings.formats))
        sources = json.dumps(list(settings.syslog_sources)) if settings.syslog_sources else None
        return formats, settings.rate_per_second, settings.burst, sources

    def configure(self, name: str, settings: SensorSettings) -> Sensor:
        """Replace a sensor's settings."""
        settings = check_settings(settings)
        with self._lock:
            cursor = self._db().execute(
                "UPDATE sensors SET formats = ?, rate_per_second = ?, burst = ?, syslog_sources = ? WHERE name = ?",
                (*self._settings_row(settings), name))
        sensor = self.get(name)
        if cursor.rowcount == 0 or sensor is None:
            raise RegistryError(f"no sensor named {name!r}; see `honeyatlas sensor list`")
        return sensor

    def rotate(self, name: str, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> tuple[str, str | None]:
        """A new ingest token, and a new hpfeeds secret when the sensor has hpfeeds credentials
        (None otherwise); the replaced ones keep working for `grace_seconds`."""
        check_rotation(name, self.get(name), grace_seconds)
        token_id, token_digest, token = new_token()
        secret = secrets.token_urlsafe(24)
        until = datetime.now(UTC) + timedelta(seconds=grace_seconds)
        with self._lock:
            con = self._db()
            cursor = con.execute(
                "UPDATE sensors SET previous_token_id = token_id, previous_token_sha256 = token_sha256,"
                " previous_hpfeeds_secret = hpfeeds_secret, previous_expires_at = ?, token_id = ?, token_sha256 = ?,"
                " hpfeeds_secret = CASE WHEN hpfeeds_secret IS NULL THEN NULL ELSE ? END"
                " WHERE name = ? AND revoked_at IS NULL",
                (until.isoformat(), token_id, token_digest, secret, name))
            hpfeeds = con.execute("SELECT hpfeeds_secret FROM sensors WHERE name = ?", (name,)).fetchone()
        if cursor.rowcount == 0:  # revoked (or removed) since the check
            check_rotation(name, self.get(name), grace_seconds)
        return token, (secret if hpfeeds and hpfeeds[0] == secret else None)

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
        row = self._one(f"SELECT {_SENSOR_COLUMNS} FROM sensors WHERE name = ?", (name,))
        return None if row is None else self._sensor(row)

    def list(self) -> list[Sensor]:
        with self._lock:
            rows = self._db().execute(f"SELECT {_SENSOR_COLUMNS} FROM sensors ORDER BY name").fetchall()
        return [self._sensor(r) for r in rows]

    def authenticate(self, token: str) -> Sensor | None:
        """The active sensor this bearer token belongs to (its current token, or the one
        `rotate` replaced while the grace lasts), or None."""
        match = TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        row = self._one(
            f"SELECT {_SENSOR_COLUMNS}, token_id, token_sha256, previous_token_sha256, previous_expires_at"
            " FROM sensors WHERE token_id = ? OR previous_token_id = ?", (token_id, token_id))
        if row is None:
            hmac.compare_digest(digest(secret), bytes(32))  # same work whether or not the id exists
            return None
        current_id, current, previous, previous_until = row[SENSOR_WIDTH:]
        expected = current if current_id == token_id else previous
        if not hmac.compare_digest(digest(secret), expected):
            return None
        if current_id != token_id and not previous_valid(_time(previous_until)):
            return None
        sensor = self._sensor(row[:SENSOR_WIDTH])
        return None if sensor.revoked else sensor

    def enable_hpfeeds(
        self, name: str, channels: list[str] | None = None, *, ident: str | None = None
    ) -> tuple[str, str]:
        """Give a sensor hpfeeds credentials; returns (ident, secret), the secret shown only now.

        `channels` are the channels it may publish to (None: the standard channels of its
        honeypot type, or "*" for a type without standard channels). Calling it again
        replaces the secret, the ident and the channels, at once (`rotate` keeps the old
        secret for a grace period).
        """
        ident, channels = hpfeeds_settings(name, self.get(name), channels, ident)
        secret = secrets.token_urlsafe(24)
        with self._lock:
            try:
                self._db().execute(
                    "UPDATE sensors SET hpfeeds_ident = ?, hpfeeds_secret = ?, hpfeeds_channels = ?,"
                    " previous_hpfeeds_secret = NULL WHERE name = ?",
                    (ident, secret, json.dumps(channels), name),
                )
            except sqlite3.IntegrityError as exc:
                raise RegistryError(f"hpfeeds ident {ident!r} is already used by another sensor") from exc
        for suffix in ("", "-wal", "-shm"):  # older files were created with the umask's mode
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self._path}{suffix}", 0o600)
        return ident, secret

    def hpfeeds_credentials(self, ident: str) -> tuple[Sensor, str, list[str]] | None:
        """The active sensor with this hpfeeds ident, its secret and its publish channels, or None."""
        found = self.hpfeeds_secrets(ident)
        return None if found is None else (found[0], found[1][0], found[2])

    def hpfeeds_secrets(self, ident: str) -> tuple[Sensor, list[str], list[str]] | None:
        """The active sensor with this hpfeeds ident, the secrets accepted now (the current
        one, then the one `rotate` replaced while its grace lasts) and its channels, or None."""
        row = self._one(
            f"SELECT {_SENSOR_COLUMNS}, hpfeeds_secret, hpfeeds_channels, previous_hpfeeds_secret,"
            " previous_expires_at FROM sensors WHERE hpfeeds_ident = ? AND hpfeeds_secret IS NOT NULL", (ident,))
        if row is None:
            return None
        sensor = self._sensor(row[:SENSOR_WIDTH])
        if sensor.revoked:
            return None
        secret, channels, previous, previous_until = row[SENSOR_WIDTH:]
        accepted = [secret, previous] if previous and previous_valid(_time(previous_until)) else [secret]
        return sensor, accepted, list(json.loads(channels or "[]"))

    @staticmethod
    def _sensor(row: tuple[Any, ...]) -> Sensor:
        name, honeypot, lat, lon, label, demo, created_at, revoked_at, formats, rate, burst, sources = row
        return Sensor(
            name=name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=bool(demo),
            created_at=_time(created_at), revoked_at=_time(revoked_at), formats=_json_tuple(formats),
            rate_per_second=rate, burst=burst, syslog_sources=_json_tuple(sources) or (),
        )


def settings_fields(settings: SensorSettings) -> dict[str, Any]:
    """A SensorSettings as `Sensor` keyword arguments."""
    return {field: getattr(settings, field) for field in SensorSettings.__struct_fields__}
