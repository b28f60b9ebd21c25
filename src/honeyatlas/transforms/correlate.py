"""correlate: streaming detectors for what no single sensor sees.

This module holds the first two detectors of the correlation issue, run on event time so a
replayed log gives the same incidents as living through it:

- `MultiSensorDetector`: one source address reaches at least `min_sensors` distinct sensors
  within `window_seconds`. The incident opens when the k-th sensor is hit and grows as more
  are hit while the window stays open.
- `ScanDetector`: one source touches many distinct ports on one sensor (vertical scan) or
  one port on many sensors (horizontal scan) within `window_seconds`.

State is bounded: at most `max_sources` sources are tracked (least recently seen evicted
first), per-source hit lists are pruned to the window, and each source keeps at most
`max_hits_per_source` hits; every eviction is counted. Pure: no I/O; incidents are values.
Not yet wired into the pipeline, the store or the API.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta

import msgspec

from honeyatlas.event import Event


class Incident(msgspec.Struct, kw_only=True):
    """One detection. `members` grows while the incident stays open (same source, same window)."""

    kind: str  # multi_sensor | horizontal_scan | vertical_scan
    source: str
    opened_at: datetime  # event time of the defining hit
    last_seen: datetime
    members: list[str]  # sensors (multi-sensor, horizontal) or ports as text (vertical)


class _Hits:
    __slots__ = ("hits", "open")

    def __init__(self) -> None:
        self.hits: deque[tuple[datetime, str, int | None]] = deque()  # (ts, sensor, dst_port)
        self.open: dict[str, Incident] = {}


class _SourceWindows:
    """Per-source hits within a window, bounded in sources and hits."""

    def __init__(self, *, window_seconds: float, max_sources: int, max_hits_per_source: int) -> None:
        self.window = timedelta(seconds=window_seconds)
        self._max_sources = max_sources
        self._max_hits = max_hits_per_source
        self._sources: OrderedDict[str, _Hits] = OrderedDict()
        self.evicted_sources = 0
        self.dropped_hits = 0

    def __len__(self) -> int:
        return len(self._sources)

    def add(self, source: str, ts: datetime, sensor: str, port: int | None) -> _Hits:
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _Hits()
            while len(self._sources) > self._max_sources:
                self._sources.popitem(last=False)
                self.evicted_sources += 1
        else:
            self._sources.move_to_end(source)
        state.hits.append((ts, sensor, port))
        horizon = ts - self.window
        while state.hits and state.hits[0][0] < horizon:
            state.hits.popleft()
        while len(state.hits) > self._max_hits:
            state.hits.popleft()
            self.dropped_hits += 1
        return state


def _grow(state: _Hits, kind: str, source: str, members: list[str], ts: datetime, window: timedelta,
          threshold: int) -> Incident | None:
    """Open the incident at the threshold or grow the open one; return it when it changed."""
    incident = state.open.get(kind)
    if incident is not None and ts - incident.last_seen > window:
        incident = None  # the window closed: a later burst is a new incident
        del state.open[kind]
    if incident is None:
        if len(members) < threshold:
            return None
        incident = Incident(kind=kind, source=source, opened_at=ts, last_seen=ts, members=sorted(members))
        state.open[kind] = incident
        return incident
    incident.last_seen = ts
    new = [m for m in members if m not in incident.members]
    if not new:
        return None
    incident.members = sorted({*incident.members, *new})
    return incident


class MultiSensorDetector:
    def __init__(self, *, min_sensors: int, window_seconds: float, max_sources: int, max_hits_per_source: int):
        self._k = min_sensors
        self._windows = _SourceWindows(window_seconds=window_seconds, max_sources=max_sources,
                                       max_hits_per_source=max_hits_per_source)

    @property
    def tracked_sources(self) -> int:
        return len(self._windows)

    @property
    def evictions(self) -> int:
        return self._windows.evicted_sources + self._windows.dropped_hits

    def observe(self, event: Event) -> Incident | None:
        if event.src_ip is None:
            return None
        state = self._windows.add(event.src_ip, event.ts, event.sensor, event.dst_port)
        sensors = list({sensor for _, sensor, _ in state.hits})
        return _grow(state, "multi_sensor", event.src_ip, sensors, event.ts, self._windows.window, self._k)


class ScanDetector:
    def __init__(self, *, min_ports: int, min_sensors: int, window_seconds: float, max_sources: int,
                 max_hits_per_source: int):
        self._min_ports = min_ports
        self._min_sensors = min_sensors
        self._windows = _SourceWindows(window_seconds=window_seconds, max_sources=max_sources,
                                       max_hits_per_source=max_hits_per_source)

    @property
    def tracked_sources(self) -> int:
        return len(self._windows)

    def observe(self, event: Event) -> list[Incident]:
        if event.src_ip is None or event.dst_port is None:
            return []
        state = self._windows.add(event.src_ip, event.ts, event.sensor, event.dst_port)
        found = []
        ports_on_sensor = {str(p) for _, s, p in state.hits if s == event.sensor and p is not None}
        vertical = _grow(state, "vertical_scan", event.src_ip, list(ports_on_sensor), event.ts,
                         self._windows.window, self._min_ports)
        sensors_on_port = {s for _, s, p in state.hits if p == event.dst_port}
        horizontal = _grow(state, "horizontal_scan", event.src_ip, list(sensors_on_port), event.ts,
                           self._windows.window, self._min_sensors)
        for incident in (vertical, horizontal):
            if incident is not None:
                found.append(incident)
        return found
