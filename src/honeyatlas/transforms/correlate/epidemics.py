"""Epidemic detector: one payload (SHA-256) seen at at least `min_sensors` sensors.

For each sample the detector keeps, per sensor, the first and last sighting and the
distinct sources that delivered it. The incident opens when the k-th sensor sees the
sample within `window_seconds` of the others' latest sightings; its timeline is the spread
(sensors in the order they first saw it, with the source that brought it), and
`doubling_seconds` fits the growth of the cumulative sensor count. State is bounded:
`max_samples` samples (LRU), `max_hits_per_sample` sensors per sample and
`max_sources_per_sensor` distinct sources counted per sensor; evictions are counted.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from honeyatlas.event import Event
from honeyatlas.incident import IncidentKind, Step
from honeyatlas.transforms.correlate._open import BoundedMap, OpenIncident


class _Sighting:
    __slots__ = ("events", "first", "last", "source", "sources")

    def __init__(self, ts: datetime, source: str | None) -> None:
        self.events = 0
        self.first = ts
        self.last = ts
        self.source = source
        self.sources: set[str] = set()


class _Sample:
    __slots__ = ("latest", "sensors")

    def __init__(self) -> None:
        self.sensors: OrderedDict[str, _Sighting] = OrderedDict()  # by last sighting, oldest first
        self.latest: datetime | None = None


class EpidemicDetector:
    def __init__(self, *, min_sensors: int, window_seconds: float, max_samples: int, max_hits_per_sample: int,
                 max_sources_per_sensor: int, max_members: int) -> None:
        self._k = min_sensors
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._max_hits = max_hits_per_sample
        self._max_sources = max_sources_per_sensor
        self._max_members = max_members
        self._samples: BoundedMap[str, _Sample] = BoundedMap(max_samples)
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0

    @property
    def tracked(self) -> int:
        return len(self._samples)

    @property
    def evictions(self) -> int:
        return self._samples.evictions + self.dropped_hits

    def observe(self, event: Event) -> list[OpenIncident]:
        digest = event.sha256
        if digest is None:
            return []
        sample = self._samples.get(digest)
        if sample is None:
            sample = _Sample()
            self._samples.put(digest, sample)
        ts, sensor, source = event.ts, event.sensor, event.src_ip
        if sample.latest is None or ts > sample.latest:
            sample.latest = ts
        sighting = sample.sensors.get(sensor)
        if sighting is None:
            sighting = sample.sensors[sensor] = _Sighting(ts, source)
            while len(sample.sensors) > self._max_hits:
                sample.sensors.popitem(last=False)
                self.dropped_hits += 1
        else:
            sighting.first = min(sighting.first, ts)
            sighting.last = max(sighting.last, ts)
            sample.sensors.move_to_end(sensor)
        sighting.events += 1
        if source is not None and len(sighting.sources) < self._max_sources:
            sighting.sources.add(source)
        incident = self.open.get((digest, ""))
        if incident is None:
            horizon = sample.latest - self._window
            while sample.sensors and next(iter(sample.sensors.values())).last < horizon:
                sample.sensors.popitem(last=False)
            if len(sample.sensors) < self._k:
                return []
            incident = OpenIncident(kind=IncidentKind.EPIDEMIC, key=digest, opened_at=ts,
                                    window_seconds=self._window_seconds, max_members=self._max_members)
            incident.sources_per_sensor = {}
            self.open[(digest, "")] = incident
            for name, seen in sorted(sample.sensors.items(), key=lambda kv: kv[1].first):
                self._join(incident, name, seen)
                for member in seen.sources:
                    incident.add_source(member)
                incident.event_count += seen.events
            incident.event_count -= 1  # the defining event is counted below
        else:
            self._join(incident, sensor, sighting)
        incident.event_count += 1
        if source is not None:
            incident.add_source(source)
        if ts > incident.last_seen:
            incident.last_seen = ts
        incident.summary = f"sample {digest[:12]} spread to {len(incident.sensors)} sensors"
        return [incident]

    @staticmethod
    def _join(incident: OpenIncident, sensor: str, sighting: _Sighting) -> None:
        if incident.add_member(sensor, Step(ts=sighting.first, sensor=sensor, source=sighting.source)):
            incident.sensors[sensor] = None
        assert incident.sources_per_sensor is not None
        incident.sources_per_sensor[sensor] = len(sighting.sources)
