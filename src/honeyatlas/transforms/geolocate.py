"""geolocate: add the source's Geo (GeoIP lookup table), the destination's Geo (the sensor's
registered location) and the source-address flags.

Loopback, private and reserved sources are kept and flagged, never dropped: the map cannot
place them, the statistics still count them.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Protocol

import msgspec

from honeyatlas.enrichment.geoip import locatable_address
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.event import Event, Flag, Geo

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class GeoLookup(Protocol):
    def lookup(self, ip: str) -> Geo | None: ...


def classify_source(ip: str) -> Flag | None:
    """The flag a source address earns, or None for a global (locatable) one.

    The GeoIP table's own fast check decides what is locatable, so an address is always
    either located or flagged, never neither; `ipaddress` only names the kind of flag.
    """
    if locatable_address(ip) is not None:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return Flag.RESERVED_SOURCE
    if addr.is_loopback:
        return Flag.LOOPBACK_SOURCE
    if addr.is_private or addr in _CGNAT or addr.is_link_local:
        # is_private also covers some reserved blocks (documentation, benchmarking); the map
        # treats them the same: not locatable, probably a lab or NAT artefact.
        return Flag.PRIVATE_SOURCE
    return Flag.RESERVED_SOURCE  # multicast, reserved, documentation, unspecified...


class Geolocator:
    """Bounded memo of address classes in front of the GeoIP table (which has its own cache)."""

    def __init__(self, geoip: GeoLookup, *, cache_size: int) -> None:
        self._geoip = geoip
        self._classes: OrderedDict[str, Flag | None] = OrderedDict()
        self._cache_size = cache_size

    def _class_of(self, ip: str) -> Flag | None:
        try:
            flag = self._classes[ip]
        except KeyError:
            flag = classify_source(ip)
            self._classes[ip] = flag
            if len(self._classes) > self._cache_size:
                self._classes.popitem(last=False)
        return flag

    def apply(self, event: Event, sensor: Sensor) -> Event:
        src_geo = None
        flags = event.flags
        if event.src_ip is not None:
            flag = self._class_of(event.src_ip)
            if flag is None:
                src_geo = self._geoip.lookup(event.src_ip)
            elif flag not in flags:
                flags = (*flags, flag)
        return msgspec.structs.replace(event, src_geo=src_geo, dst_geo=sensor.geo(), flags=flags)
