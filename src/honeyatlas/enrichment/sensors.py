"""The sensor as the rest of the pipeline sees it: a name, a honeypot type and a location.

Sensors usually sit behind NAT, so their registered location, not their address, is where
the map draws their arcs. Persistence lives in honeyatlas.store.registry; this module is pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from honeyatlas.event import Geo, Precision

_T = TypeVar("_T")


class Sensor(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    honeypot: str
    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    demo: bool = False
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

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

    def add(self, name: str, *, honeypot: str, lat: float | None, lon: float | None,
            label: str | None = None, demo: bool = False) -> tuple[Sensor, str]: ...

    def revoke(self, name: str) -> Sensor: ...

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

    def add(self, name: str, *, honeypot: str, lat: float | None, lon: float | None,
            label: str | None = None, demo: bool = False) -> tuple[Sensor, str]:
        self._answers.clear()
        return self._inner.add(name, honeypot=honeypot, lat=lat, lon=lon, label=label, demo=demo)

    def revoke(self, name: str) -> Sensor:
        self._answers.clear()
        return self._inner.revoke(name)

    def enable_hpfeeds(
        self, name: str, channels: list[str] | None = None, *, ident: str | None = None
    ) -> tuple[str, str]:
        self._answers.clear()
        return self._inner.enable_hpfeeds(name, channels, ident=ident)
