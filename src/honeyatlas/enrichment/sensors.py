"""The sensor as the rest of the pipeline sees it: a name, a honeypot type and a location.

Sensors usually sit behind NAT, so their registered location, not their address, is where
the map draws their arcs. Persistence lives in honeyatlas.store.registry; this module is pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec

from honeyatlas.event import Geo, Precision


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
