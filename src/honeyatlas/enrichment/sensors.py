"""The sensor as the rest of the pipeline sees it: a name, a honeypot type, a location, and
the limits the sources apply to it.

Sensors usually sit behind NAT, so their registered location, not their address, is where
the map draws their arcs. Per-sensor settings are stored with the sensor and answered with
it (so the cached directory answers them too): the formats it may send over HTTP (None: its
honeypot's own formats plus `auto`, resolved by `allowed_formats`), its events/s rate and
burst (None: the configured default), and the addresses or networks from which a syslog
message may name it as HOSTNAME (empty: none). Persistence lives in
honeyatlas.store.registry; this module is pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from honeyatlas.event import Geo, Precision

_T = TypeVar("_T")
NATIVE_FORMAT = "event"  # adapters/native.py: the event schema itself
AUTO_FORMAT = "auto"


class SensorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator sets per sensor (`sensor add/set`); None means the default."""

    formats: tuple[str, ...] | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    syslog_sources: tuple[str, ...] = ()  # addresses or networks, normalised ("192.0.2.7/32")


class Sensor(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    honeypot: str
    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    demo: bool = False
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    formats: tuple[str, ...] | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    syslog_sources: tuple[str, ...] = ()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def settings(self) -> SensorSettings:
        return SensorSettings(formats=self.formats, rate_per_second=self.rate_per_second, burst=self.burst,
                              syslog_sources=self.syslog_sources)

    def allowed_formats(self, known: Iterable[str]) -> frozenset[str]:
        """The formats this sensor may send over HTTP, given the names of every known format:
        those it was given, or by default its honeypot's own (the format named after the
        honeypot and those named `<honeypot>-...`, e.g. cowrie, cowrie-cef and cowrie-sessions
        for a cowrie sensor), `auto` and honeyatlas's own `event` schema. `auto` detects any
        format, so the default keeps a sensor from *naming* another honeypot's format; a
        sensor given an explicit list without `auto` sends only those."""
        if self.formats is not None:
            return frozenset(self.formats)
        own = self.honeypot
        return frozenset(f for f in known if f == own or f.startswith(f"{own}-")) | {AUTO_FORMAT, NATIVE_FORMAT}

    def geo(self) -> Geo | None:
        """The sensor's registered location as a destination Geo, or None when unknown."""
        if self.lat is None or self.lon is None:
            return None
        return Geo(lat=self.lat, lon=self.lon, precision=Precision.SENSOR)


class SensorDirectory(Protocol):
    """Who may send, as which sensor: what sources, the web layer and the `sensor` command
    need from a registry (SQLite beside DuckDB, or PostgreSQL for the roles). Lookups are
    cheap local reads (an indexed row, or a cached copy); they may run on the event loop."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get(self, name: str) -> Sensor | None: ...

    def list(self) -> list[Sensor]: ...

    def authenticate(self, token: str) -> Sensor | None:
        """The active sensor a bearer token belongs to, or None (unknown, malformed, revoked)."""

    def hpfeeds_credentials(self, ident: str) -> tuple[Sensor, str, list[str]] | None:
        """(sensor, secret, channels) of an hpfeeds ident, or None."""

    def hpfeeds_secrets(self, ident: str) -> tuple[Sensor, list[str], list[str]] | None:
        """(sensor, the secrets accepted now, channels) of an hpfeeds ident, or None: the
        current secret first, then the one it replaced while `rotate`'s grace lasts."""

    def add(self, name: str, *, honeypot: str, lat: float | None, lon: float | None,
            label: str | None = None, demo: bool = False,
            settings: SensorSettings | None = None) -> tuple[Sensor, str]:
        """Register a sensor (again, if its name belongs to a revoked one); returns it and its
        ingest token, shown once."""

    def revoke(self, name: str) -> Sensor: ...

    def configure(self, name: str, settings: SensorSettings) -> Sensor:
        """Replace a sensor's settings (all of them: read `get(name).settings` to change one)."""

    def rotate(self, name: str, grace_seconds: float) -> tuple[str, str | None]:
        """A new ingest token (and hpfeeds secret, when the sensor has hpfeeds credentials),
        shown once; the ones they replace keep working for `grace_seconds`."""

    def enable_hpfeeds(
        self, name: str, channels: list[str] | None = None, *, ident: str | None = None
    ) -> tuple[str, str]: ...


class CachedDirectory:
    """A `SensorDirectory` in front of a remote one (PostgreSQL): each answer (found or not)
    is kept for `ttl_seconds`, so the event loop waits for the database once per token, name
    or ident and interval rather than once per request (a round trip is ~0.2 ms locally, far
    more across hosts). Changes made through this object apply at once; changes made
    elsewhere (the `sensor` command, another process) within `ttl_seconds`. Bounded: at
    most `max_entries` answers per kind, the oldest forgotten first."""

    def __init__(self, inner: SensorDirectory, *, ttl_seconds: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[float, object]] = {}

    def _cached(self, kind: str, key: str, lookup: Callable[[str], _T]) -> _T:
        now = self._clock()
        found = self._answers.get((kind, key))
        if found is not None and now - found[0] < self._ttl:
            return found[1]  # type: ignore[return-value]
        value = lookup(key)
        self._answers[(kind, key)] = (now, value)
        if len(self._answers) > self._max:
            del self._answers[next(iter(self._answers))]
        return value

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def get(self, name: str) -> Sensor | None:
        return self._cached("name", name, self._inner.get)

    def list(self) -> list[Sensor]:
        return self._inner.list()

    def authenticate(self, token: str) -> Sensor | None:
        return self._cached("token", token, self._inner.authenticate)

    def hpfeeds_credentials(self, ident: str) -> tuple[Sensor, str, list[str]] | None:
        return self._cached("ident", ident, self._inner.hpfeeds_credentials)

    def hpfeeds_secrets(self, ident: str) -> tuple[Sensor, list[str], list[str]] | None:
        return self._cached("secrets", ident, self._inner.hpfeeds_secrets)

    def add(self, name: str, *, honeypot: str, lat: float | None, lon: float | None,
            label: str | None = None, demo: bool = False,
            settings: SensorSettings | None = None) -> tuple[Sensor, str]:
        self._answers.clear()
        return self._inner.add(name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo, settings=settings)

    def revoke(self, name: str) -> Sensor:
        self._answers.clear()
        return self._inner.revoke(name)

    def configure(self, name: str, settings: SensorSettings) -> Sensor:
        self._answers.clear()
        return self._inner.configure(name, settings)

    def rotate(self, name: str, grace_seconds: float) -> tuple[str, str | None]:
        self._answers.clear()
        return self._inner.rotate(name, grace_seconds)

    def enable_hpfeeds(
        self, name: str, channels: list[str] | None = None, *, ident: str | None = None
    ) -> tuple[str, str]:
        self._answers.clear()
        return self._inner.enable_hpfeeds(name, channels, ident=ident)
