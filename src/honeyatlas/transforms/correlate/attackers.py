"""Detectors keyed by the attacker: one source across many sensors, and port scans.

- `MultiSensorDetector`: one source (its address, its /24 or /48 prefix, or its ASN) hits
  at least `min_sensors` distinct sensors within `window_seconds`. The incident opens at the
  k-th sensor's hit and grows while the source stays active within the window.
- `ScanDetector`: one source touches at least `min_ports` distinct ports of one sensor
  (vertical scan) or one port on at least `min_sensors` sensors (horizontal scan) within
  `window_seconds`.

Per-source state is bounded twice: at most `max_sources` sources (least recently active
evicted first) and at most `max_hits_per_source` (sensor or sensor/port) entries each,
pruned to the window; every eviction is counted.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from datetime import datetime, timedelta

from honeyatlas.event import Event
from honeyatlas.incident import IncidentKind, Step
from honeyatlas.transforms.correlate._open import BoundedMap, OpenIncident

# (first hit in the window, last hit, source of the first hit, port of the first hit, events)
_Hit = list  # [datetime, datetime, str, int | None, int]


class _Window:
    """Hits of one source, keyed by sensor or (sensor, port), oldest activity first."""

    __slots__ = ("hits", "latest")

    def __init__(self) -> None:
        self.hits: OrderedDict[object, _Hit] = OrderedDict()
        self.latest: datetime | None = None

    def touch(self, key: object, event: Event, max_hits: int) -> tuple[bool, list[object]]:
        """Record a hit; return (key is new in the window, keys evicted for size)."""
        ts = event.ts
        if self.latest is None or ts > self.latest:
            self.latest = ts
        hit = self.hits.get(key)
        if hit is None:
            self.hits[key] = [ts, ts, event.src_ip, event.dst_port, 1]
            evicted = []
            while len(self.hits) > max_hits:
                evicted.append(self.hits.popitem(last=False)[0])
            return True, evicted
        if ts > hit[1]:
            hit[1] = ts
        hit[4] += 1
        self.hits.move_to_end(key)
        return False, []

    def expired(self, window: timedelta) -> list[object]:
        """Remove and return the keys whose last hit left the window."""
        assert self.latest is not None
        horizon = self.latest - window
        gone = []
        while self.hits:
            key, hit = next(iter(self.hits.items()))
            if hit[1] >= horizon:
                break
            del self.hits[key]
            gone.append(key)
        return gone


def group_key(event: Event, group_by: str) -> str | None:
    """What one attacker is: its address, its network prefix (/24, /48) or its ASN."""
    ip = event.src_ip
    if ip is None:
        return None
    if group_by == "ip":
        return ip
    if group_by == "asn":
        asn = event.src_geo.asn if event.src_geo is not None else None
        return f"AS{asn}" if asn is not None else None
    prefix = 24 if ":" not in ip else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class MultiSensorDetector:
    def __init__(self, *, min_sensors: int, window_seconds: float, group_by: str, max_sources: int,
                 max_hits_per_source: int, max_members: int) -> None:
        self._k = min_sensors
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._group_by = group_by
        self._max_hits = max_hits_per_source
        self._max_members = max_members
        self._sources: BoundedMap[str, _Window] = BoundedMap(max_sources)
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0

    @property
    def tracked(self) -> int:
        return len(self._sources)

    @property
    def evictions(self) -> int:
        return self._sources.evictions + self.dropped_hits

    def observe(self, event: Event) -> list[OpenIncident]:
        key = group_key(event, self._group_by)
        if key is None:
            return []
        window = self._sources.get(key)
        if window is None:
            window = _Window()
            self._sources.put(key, window)
        _, evicted = window.touch(event.sensor, event, self._max_hits)
        self.dropped_hits += len(evicted)
        window.expired(self._window)
        incident = self.open.get((key, ""))
        if incident is None:
            if len(window.hits) < self._k:
                return []
            incident = OpenIncident(kind=IncidentKind.MULTI_SENSOR, key=key, opened_at=event.ts,
                                    window_seconds=self._window_seconds, max_members=self._max_members)
            self.open[(key, "")] = incident
            for sensor, (first, _, source, port, count) in sorted(window.hits.items(), key=lambda kv: kv[1][0]):
                self._join(incident, str(sensor), first, source, port)
                incident.event_count += count
            incident.event_count -= 1  # the defining event is counted below
        else:
            self._join(incident, event.sensor, event.ts, event.src_ip, event.dst_port)
        incident.event_count += 1
        if event.ts > incident.last_seen:
            incident.last_seen = event.ts
        if event.src_ip is not None:
            incident.add_source(event.src_ip)
        incident.summary = f"{key} reached {len(incident.sensors)} sensors"
        return [incident]

    @staticmethod
    def _join(incident: OpenIncident, sensor: str, ts: datetime, source: str | None, port: int | None) -> None:
        if incident.add_member(sensor, Step(ts=ts, sensor=sensor, source=source, port=port)):
            incident.sensors[sensor] = None
        if source is not None:
            incident.add_source(source)


class ScanDetector:
    def __init__(self, *, min_ports: int, min_sensors: int, window_seconds: float, max_sources: int,
                 max_hits_per_source: int, max_members: int) -> None:
        self._min_ports = min_ports
        self._min_sensors = min_sensors
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._max_hits = max_hits_per_source
        self._max_members = max_members
        self._sources: BoundedMap[str, _ScanState] = BoundedMap(max_sources)
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0

    @property
    def tracked(self) -> int:
        return len(self._sources)

    @property
    def evictions(self) -> int:
        return self._sources.evictions + self.dropped_hits

    def observe(self, event: Event) -> list[OpenIncident]:
        source, port = event.src_ip, event.dst_port
        if source is None or port is None:
            return []
        state = self._sources.get(source)
        if state is None:
            state = _ScanState()
            self._sources.put(source, state)
        self.dropped_hits += state.touch(event, self._window, self._max_hits)
        changed = []
        for kind, qualifier, members, threshold in (
            (IncidentKind.VERTICAL_SCAN, event.sensor, state.ports_on[event.sensor], self._min_ports),
            (IncidentKind.HORIZONTAL_SCAN, str(port), state.sensors_on[port], self._min_sensors),
        ):
            incident = self.open.get((source, qualifier))
            if incident is None:
                if members < threshold:
                    continue
                incident = OpenIncident(kind=kind, key=source, qualifier=qualifier, opened_at=event.ts,
                                        window_seconds=self._window_seconds, max_members=self._max_members)
                incident.add_source(source)
                self.open[(source, qualifier)] = incident
                vertical = kind is IncidentKind.VERTICAL_SCAN
                matching = [
                    (hit, sensor, hit_port) for (sensor, hit_port), hit in state.window.hits.items()  # type: ignore[misc]
                    if (sensor == event.sensor if vertical else hit_port == port)
                ]
                for hit, sensor, hit_port in sorted(matching, key=lambda m: m[0][0]):
                    self._join(incident, vertical, sensor, hit_port, hit[0])
                    incident.event_count += hit[4]
                incident.event_count -= 1
            else:
                self._join(incident, kind is IncidentKind.VERTICAL_SCAN, event.sensor, port, event.ts)
            incident.event_count += 1
            if event.ts > incident.last_seen:
                incident.last_seen = event.ts
            if kind is IncidentKind.VERTICAL_SCAN:
                incident.summary = f"{source} probed {len(incident.ports)} ports of {event.sensor}"
            else:
                incident.summary = f"{source} probed port {port} on {len(incident.sensors)} sensors"
            changed.append(incident)
        return changed

    @staticmethod
    def _join(incident: OpenIncident, vertical: bool, sensor: str, port: int, ts: datetime) -> None:
        member: str | int = port if vertical else sensor
        if incident.add_member(member, Step(ts=ts, sensor=sensor, source=incident.key, port=port)):
            incident.sensors[sensor] = None
            incident.ports[port] = None


class _ScanState:
    """(sensor, port) hits of one source in the window, with counts per sensor and per port."""

    __slots__ = ("ports_on", "sensors_on", "window")

    def __init__(self) -> None:
        self.window = _Window()
        self.ports_on: Counter[str] = Counter()  # distinct ports per sensor
        self.sensors_on: Counter[int] = Counter()  # distinct sensors per port

    def touch(self, event: Event, window: timedelta, max_hits: int) -> int:
        key = (event.sensor, event.dst_port)
        new, evicted = self.window.touch(key, event, max_hits)
        if new:
            self._count(key, 1)
        for gone in [*evicted, *self.window.expired(window)]:
            self._count(gone, -1)  # type: ignore[arg-type]
        return len(evicted)

    def _count(self, key: tuple[str, int], delta: int) -> None:
        sensor, port = key
        self.ports_on[sensor] += delta
        self.sensors_on[port] += delta
        if self.ports_on[sensor] <= 0:
            del self.ports_on[sensor]
        if self.sensors_on[port] <= 0:
            del self.sensors_on[port]
