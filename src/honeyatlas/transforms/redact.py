"""What the public view may see: one redaction, applied where answers and frames are encoded.

The public map (`[public] enabled`) shows the same data as the analysts' map with everything
removed that burns a sensor or repeats what an attacker typed:

- source addresses are cut to their network: /24 for IPv4, /48 for IPv6 (`203.0.113.0/24`);
- a sensor appears only as its public alias (`[public] sensor_aliases`) or its country's
  code, and it sits on its country's representative point, never its own position;
- usernames, passwords, commands, URLs, user agents, client banners, the honeypot's own
  address and port, sessions, IDS signatures, hashes and raw records are dropped;
- events keep their flags (demo, private or reserved source, truncated), so the public map
  says when it shows the simulated honeynet;
- incidents keep their kind, status, times and sizes; their key, sources, sensors and
  fingerprint (credentials, commands, banners) are dropped.

The summary keeps its counts and the top lists of `PUBLIC_TOP_DIMENSIONS`.

A sensor's country is the one its registered position lies in on the page's own world map
(enrichment/countries.py: coarse, so a sensor a few km from a border may land in the
neighbour, and one near a city-state in the city-state); an operator who wants it exact, or
wants no country shown at all, sets an alias. Its point is the country's representative
point from the centroid table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from honeyatlas.event import Event, Geo, Precision
from honeyatlas.incident import Incident

_T = TypeVar("_T")

PUBLIC_TOP_DIMENSIONS = frozenset({"countries", "asns", "ports", "kinds"})
IPV4_PREFIX = 24
IPV6_PREFIX = 48
MAX_PLACES = 100_000  # sensor positions remembered; a registry is far smaller


def network_of(address: str) -> str:
    """`203.0.113.7` -> `203.0.113.0/24`; `2001:db8:1:2::5` -> `2001:db8:1::/48`; text that is
    not an address gives an empty string (it may be anything an attacker typed)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class Places(Protocol):
    """Countries on the map: which one holds a position, and where to draw each."""

    def country_at(self, lat: float, lon: float) -> str | None: ...

    def centroid(self, code: str) -> tuple[float, float] | None: ...


class PublicView:
    """Redacts events, incidents and summaries for the public audience."""

    def __init__(self, places: Callable[[], Places], aliases: Mapping[str, str]) -> None:
        """`places` loads the country table on first use (the constructor does no I/O)."""
        self._load_places = places
        self._places_table: Places | None = None
        self._aliases = dict(aliases)
        self._places: dict[tuple[str, float | None, float | None], tuple[str, Geo | None]] = {}

    def _place(self, sensor: str, geo: Geo | None) -> tuple[str, Geo | None]:
        lat = geo.lat if geo is not None else None
        lon = geo.lon if geo is not None else None
        key = (sensor, lat, lon)
        found = self._places.get(key)
        if found is None:
            if self._places_table is None:
                self._places_table = self._load_places()
            places = self._places_table
            country = places.country_at(lat, lon) if lat is not None and lon is not None else None
            point = places.centroid(country) if country else None
            public_geo = (Geo(country=country, lat=point[0], lon=point[1], precision=Precision.COUNTRY)
                          if point is not None else None)
            found = (self._aliases.get(sensor) or country or "", public_geo)
            if len(self._places) >= MAX_PLACES:
                self._places.clear()
            self._places[key] = found
        return found

    def event(self, event: Event) -> Event:
        label, dst_geo = self._place(event.sensor, event.dst_geo)
        return Event(
            id=event.id, ts=event.ts, ingest_ts=event.ingest_ts, sensor=label, honeypot="", kind=event.kind,
            outcome=event.outcome, src_ip=network_of(event.src_ip) if event.src_ip else None,
            transport=event.transport, protocol=event.protocol, dst_port=event.dst_port,
            src_geo=event.src_geo, dst_geo=dst_geo, flags=event.flags, v=event.v,
        )

    def incident(self, incident: Incident) -> Incident:
        # Built from an allow-list, as events are: a field added to Incident later (campaign
        # keys, say: attacker text) stays out of the public view until chosen here.
        return Incident(
            id=incident.id, kind=incident.kind, key="", status=incident.status, opened_at=incident.opened_at,
            last_seen=incident.last_seen, window_seconds=incident.window_seconds,
            summary=f"{incident.kind}: {incident.source_count} sources, {len(incident.sensors)} sensors",
            event_count=incident.event_count, source_count=incident.source_count, ports=incident.ports,
            confidence=incident.confidence, v=incident.v,
        )

    @staticmethod
    def top(top: Mapping[str, list[_T]]) -> dict[str, list[_T]]:
        return {name: items for name, items in top.items() if name in PUBLIC_TOP_DIMENSIONS}
