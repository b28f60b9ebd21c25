"""The mutable builder behind one incident, and a size-bounded map with counted evictions.

Detectors keep one `OpenIncident` per thing they are watching once it crossed its
threshold; `snapshot()` turns it into the frozen `Incident` that leaves the transform.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import Generic, TypeVar

from honeyatlas.incident import (
    Fingerprint,
    Incident,
    IncidentKind,
    IncidentStatus,
    MatchedKey,
    Step,
    doubling_seconds,
    incident_id,
)

COUNT_FACTOR = 20
K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """An LRU map of at most `max_size` entries; evictions are counted, never silent."""

    def __init__(self, max_size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._max = max_size
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
            self.evictions += 1

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)


class OpenIncident:
    """An incident while it can still grow. Members are the sensors, ports or sources whose
    first hit the timeline records; `sources` and `timeline` keep at most `max_members`.
    Distinct members and sources are counted exactly up to COUNT_FACTOR * max_members
    (10,000 by default), then no longer grow: past that, counts are lower bounds."""

    __slots__ = (
        "_more_sources", "confidence", "event_count", "fingerprint", "id", "key", "keys", "kind", "last_seen",
        "max_members", "members", "opened_at", "ports", "qualifier", "sensors", "source_count", "sources",
        "sources_per_sensor", "summary", "timeline", "warming", "window_seconds",
    )

    def __init__(
        self, *, kind: IncidentKind, key: str, opened_at: datetime, window_seconds: float, max_members: int,
        qualifier: str = "", fingerprint: Fingerprint | None = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.qualifier = qualifier
        self.fingerprint = fingerprint
        self.id = incident_id(kind, key, opened_at, qualifier)
        self.opened_at = opened_at
        self.last_seen = opened_at
        self.window_seconds = window_seconds
        self.warming = False  # a campaign opened before the detector knew the background
        self.keys: tuple[MatchedKey, ...] = ()  # campaigns: the keys that opened it, with their rarity
        self.confidence: float | None = None  # campaigns
        self.max_members = max_members
        self.members: set[str | int] = set()
        self.timeline: list[Step] = []
        self.sources: dict[str, None] = {}  # insertion-ordered set, cut at max_members
        self._more_sources: set[str] = set()  # distinct sources past the listed ones, for the count
        self.source_count = 0
        self.sensors: dict[str, None] = {}
        self.ports: dict[int, None] = {}
        self.sources_per_sensor: dict[str, int] | None = None
        self.event_count = 0
        self.summary = ""

    def add_member(self, member: str | int, step: Step) -> bool:
        """Record a member's first hit; False when it was already a member (or past the count bound)."""
        if member in self.members or len(self.members) >= self.max_members * COUNT_FACTOR:
            return False
        self.members.add(member)
        if len(self.timeline) < self.max_members:
            self.timeline.append(step)
        return True

    def add_source(self, source: str) -> bool:
        if source in self.sources or source in self._more_sources:
            return False
        if len(self.sources) < self.max_members:
            self.sources[source] = None
        elif len(self._more_sources) < self.max_members * (COUNT_FACTOR - 1):
            self._more_sources.add(source)
        else:
            return False
        self.source_count += 1
        return True

    def snapshot(self, status: IncidentStatus) -> Incident:
        return Incident(
            id=self.id,
            kind=self.kind,
            key=self.key,
            status=status,
            opened_at=self.opened_at,
            last_seen=self.last_seen,
            window_seconds=self.window_seconds,
            summary=self.summary,
            event_count=self.event_count,
            sources=tuple(self.sources),
            source_count=self.source_count,
            sensors=tuple(self.sensors),
            ports=tuple(sorted(self.ports)),
            timeline=tuple(self.timeline),
            fingerprint=self.fingerprint,
            sources_per_sensor=dict(self.sources_per_sensor or {}),
            doubling_seconds=(
                doubling_seconds([s.ts for s in self.timeline]) if self.kind is IncidentKind.EPIDEMIC else None
            ),
            keys=self.keys,
            confidence=self.confidence,
        )
