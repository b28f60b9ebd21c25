"""The sensor as the rest of the pipeline sees it: a name, a honeypot type and a location.

Sensors usually sit behind NAT, so their registered location, not their address, is where
the map draws their arcs. Persistence lives in honeyatlas.store.registry; this module is pure.
"""

from __future__ import annotations

from datetime import datetime

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
