"""correlate: streaming detectors for what no single sensor sees.

`Correlator.observe(events)` runs every detector on every event, in the order given, and
returns the incidents that opened, grew or closed, as frozen `Incident` values (the latest
state of each, once per call). The detectors (docs/correlation.md):

- multi-sensor attacker and port scans (`attackers`), campaigns (`campaigns`) and malware
  epidemics (`epidemics`).

Everything runs on event time, never on the wall clock: windows slide with the events'
`ts`, and an incident closes when the watermark (the latest event time seen, but never more
than `future_tolerance_seconds` past the event's arrival, so one sensor with a wrong clock
cannot close everything) passes its last activity plus its window. Replaying a log gives
the same incidents, with the same ids, as living through it, whatever the batch sizes.
State is bounded by the `max_*` options; evictions and forced closures are counted.
Pure: no I/O.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from honeyatlas.config import CorrelationConfig
from honeyatlas.event import Event
from honeyatlas.incident import Fingerprint, Incident, IncidentStatus
from honeyatlas.transforms.correlate import known as known_lists
from honeyatlas.transforms.correlate._open import OpenIncident
from honeyatlas.transforms.correlate.attackers import MultiSensorDetector, ScanDetector
from honeyatlas.transforms.correlate.benign import BenignNetworks
from honeyatlas.transforms.correlate.campaigns import CampaignDetector
from honeyatlas.transforms.correlate.epidemics import EpidemicDetector

__all__ = [
    "BY_KEY",
    "BY_SOURCE",
    "CampaignDetector",
    "Correlator",
    "EpidemicDetector",
    "Hit",
    "MultiSensorDetector",
    "ScanDetector",
    "latest_by_id",
]


def latest_by_id(incidents: Iterable[Incident]) -> dict[str, Incident]:
    return {incident.id: incident for incident in incidents}


class Detector(Protocol):
    open: dict[tuple[str, str], OpenIncident]

    @property
    def tracked(self) -> int: ...

    @property
    def evictions(self) -> int: ...

    def observe(self, event: Event) -> list[OpenIncident]: ...


# Detectors whose state is keyed by the source address: in a cluster they run where the
# source's partition is consumed. The others are keyed by what sources share (a payload
# hash, a campaign fingerprint) and run where that key's partition is consumed.
BY_SOURCE = ("multi_sensor", "scan")
BY_KEY = ("campaign", "epidemic")
# Detectors that sources in `correlation.benign_networks` never feed (benign.py).
NOT_BENIGN = ("multi_sensor", "campaign")


class Hit(msgspec.Struct, frozen=True, array_like=True):
    """A campaign fingerprint one event completed (`CampaignDetector.fingerprints`), passed
    from the source's worker to the fingerprint's worker; `common` carries the source
    stage's finding that every part of it (credential pair, command) is common; `pair`, the
    second key ("<fingerprint>:<value>") the same source showed with it, for a pair hit."""

    fingerprint: str
    value: str
    common: bool = False
    pair: str = ""


def campaign_detector(s: CorrelationConfig, *, max_fingerprints: int | None = None,
                      max_hits_per_fingerprint: int | None = None,
                      common_part_sources: int | None = None) -> CampaignDetector:
    """The campaign detector the settings describe (a worker's fingerprinter overrides the
    sizes of the state it does not use and its share of the common-part threshold)."""
    known = frozenset(known_lists.COMMON_CREDENTIALS) if s.campaign_builtin_credentials else frozenset()
    return CampaignDetector(
        min_sources=s.campaign_min_sources, window_seconds=s.campaign_window_seconds,
        credential_count=s.campaign_credential_count, command_count=s.campaign_command_count,
        ignore_client_versions=s.campaign_ignore_client_versions, max_sessions=s.max_sessions,
        max_fingerprints=s.max_fingerprints if max_fingerprints is None else max_fingerprints,
        max_hits_per_fingerprint=s.max_hits_per_source if max_hits_per_fingerprint is None else max_hits_per_fingerprint,
        max_members=s.max_members_per_incident, background_half_life_seconds=s.campaign_background_half_life_seconds,
        max_background_sources=s.campaign_max_background_sources,
        common_part_sources=s.campaign_common_part_sources if common_part_sources is None else common_part_sources,
        max_parts=s.max_fingerprints, warmup_seconds=s.campaign_warmup_seconds,
        known_credentials=known | frozenset(s.campaign_common_credentials),
        shared_hosts=tuple(s.campaign_shared_hosts),
    )


class Correlator:
    """All four detectors (`--role all`), or a subset: `BY_SOURCE` in a worker's source
    stage, `BY_KEY` in its keyed stage (fed by `observe_keyed`)."""

    def __init__(self, settings: CorrelationConfig, detectors: Iterable[str] | None = None) -> None:
        s = settings
        members = s.max_members_per_incident
        self.detectors: dict[str, Detector] = {
            "multi_sensor": MultiSensorDetector(
                min_sensors=s.multi_sensor_min_sensors, window_seconds=s.multi_sensor_window_seconds,
                group_by=s.multi_sensor_group_by, max_sources=s.max_sources,
                max_hits_per_source=s.max_hits_per_source, max_members=members,
            ),
            "scan": ScanDetector(
                min_ports=s.scan_min_ports, min_sensors=s.scan_min_sensors, window_seconds=s.scan_window_seconds,
                max_sources=s.max_sources, max_hits_per_source=s.max_hits_per_source, max_members=members,
            ),
            "campaign": campaign_detector(s),
            "epidemic": EpidemicDetector(
                min_sensors=s.epidemic_min_sensors, window_seconds=s.epidemic_window_seconds,
                max_samples=s.max_samples, max_hits_per_sample=s.max_hits_per_source,
                max_sources_per_sensor=s.max_hits_per_source, max_members=members,
            ),
        }
        if detectors is not None:
            wanted = set(detectors)
            self.detectors = {name: d for name, d in self.detectors.items() if name in wanted}
        self._settings = settings
        self.benign = BenignNetworks(s.benign_networks)
        self._tolerance = timedelta(seconds=s.future_tolerance_seconds)
        self._max_open = s.max_open_incidents
        self._open: dict[str, tuple[OpenIncident, Detector]] = {}
        self._deadlines: list[tuple[datetime, str]] = []  # (last_seen + window, id), lazily updated
        self.watermark: datetime | None = None
        self.opened: Counter[str] = Counter()  # by incident kind
        self.closed = 0
        self.forced_closures = 0  # closed early because max_open_incidents was reached

    @property
    def open_incidents(self) -> int:
        return len(self._open)

    def is_open(self, incident_id: str) -> bool:
        return incident_id in self._open

    @property
    def transitions(self) -> int:
        """Incidents opened or closed since start: a change a caller may want saved at once."""
        return sum(self.opened.values()) + self.closed

    def observe(self, events: Iterable[Event]) -> list[Incident]:
        changed: dict[str, OpenIncident] = {}
        closed: dict[str, Incident] = {}
        for event in events:
            benign = event.src_ip in self.benign
            for name, detector in self.detectors.items():
                if not (benign and name in NOT_BENIGN):
                    self._track(detector, detector.observe(event), changed)
            self._advance(event, closed)
        return self._result(changed, closed)

    def fingerprinter(self, share: float = 1.0) -> CampaignDetector:
        """A campaign detector used only for `fingerprints(event)` (its per-session state):
        the source stage of a worker finds the fingerprints, the keyed stage counts them.
        `share` is the part of all sources this one sees (a worker: its partitions' share):
        a credential or command used by N sources reaches it from about N x share, so the
        threshold of a common part is scaled alike, but never to `campaign_min_sources` or
        below: a worker that saw the first C members of a campaign must not call the
        campaign's own new parts common before it opens (with 4 workers, 10 x 1/4 rounded to
        2 did, and lost commands campaigns whose members landed on one worker)."""
        s = self._settings
        return campaign_detector(
            s, max_fingerprints=1, max_hits_per_fingerprint=1,
            common_part_sources=max(s.campaign_min_sources + 1, round(s.campaign_common_part_sources * share)),
        )

    def observe_keyed(self, items: Iterable[tuple[Event, Hit | None]]) -> list[Incident]:
        """The keyed stage: each item is an event with the campaign fingerprint it completed
        (counted by the campaign detector) or None (an event with a payload hash, for the
        epidemic detector). Same bookkeeping and watermark rule as `observe`."""
        changed: dict[str, OpenIncident] = {}
        closed: dict[str, Incident] = {}
        campaign = self.detectors.get("campaign")
        epidemic = self.detectors.get("epidemic")
        for event, hit in items:
            if hit is None:
                if epidemic is not None:
                    self._track(epidemic, epidemic.observe(event), changed)
            elif isinstance(campaign, CampaignDetector) and event.src_ip is not None:
                opened = campaign.hit(Fingerprint(hit.fingerprint), hit.value, event, common=hit.common, pair=hit.pair)
                self._track(campaign, [opened] if opened is not None else [], changed)
            self._advance(event, closed)
        return self._result(changed, closed)

    def _track(self, detector: Detector, incidents: list[OpenIncident], changed: dict[str, OpenIncident]) -> None:
        for incident in incidents:
            if incident.id not in self._open:
                self._open[incident.id] = (incident, detector)
                heapq.heappush(self._deadlines, (self._deadline(incident), incident.id))
                self.opened[incident.kind] += 1
            changed[incident.id] = incident

    def _advance(self, event: Event, closed: dict[str, Incident]) -> None:
        arrival_bound = event.ingest_ts + self._tolerance
        clock = event.ts if event.ts <= arrival_bound else arrival_bound
        if self.watermark is None or clock > self.watermark:
            self.watermark = clock
            self._close_due(closed)
        if len(self._open) > self._max_open:
            self._close_earliest(closed)

    @staticmethod
    def _result(changed: dict[str, OpenIncident], closed: dict[str, Incident]) -> list[Incident]:
        found = [incident.snapshot(IncidentStatus.OPEN) for key, incident in changed.items() if key not in closed]
        found.extend(closed.values())
        return found

    def replay_windows(self) -> tuple[float, float]:
        """How much stored history rebuilds the state after a restart: (seconds of every
        event, seconds of payload events), twice the longest window of each kind."""
        s = self._settings
        recent = 2 * max(s.multi_sensor_window_seconds, s.scan_window_seconds, s.campaign_window_seconds)
        return recent, s.epidemic_window_seconds

    def rebuild(self, events: list[Event], stored_open: list[Incident]) -> list[Incident]:
        """Replay stored events into a fresh correlator after a restart. Returns the incidents
        to store: those the replay produced (same ids as before when their whole history was
        replayed) and the stored open ones it did not reproduce, now closed, so no incident
        stays open forever because its state was lost."""
        return self.end_rebuild(self.replay(events), stored_open)

    def replay(self, events: Iterable[Event]) -> dict[str, Incident]:
        """One part of a rebuild: observe stored events; the latest state of each incident they
        produced. Parts go in arrival order; merge their results in that order."""
        return latest_by_id(self.observe(events))

    def end_rebuild(self, produced: dict[str, Incident], stored_open: list[Incident]) -> list[Incident]:
        """The end of a rebuild: what the replay produced, plus the stored open incidents it
        did not reproduce, now closed."""
        produced = dict(produced)
        for incident in stored_open:
            if incident.id not in produced and incident.id not in self._open:
                produced[incident.id] = msgspec.structs.replace(incident, status=IncidentStatus.CLOSED)
        return list(produced.values())

    @staticmethod
    def _deadline(incident: OpenIncident) -> datetime:
        return incident.last_seen + timedelta(seconds=incident.window_seconds)

    def _close_due(self, closed: dict[str, Incident]) -> None:
        assert self.watermark is not None
        while self._deadlines and self._deadlines[0][0] < self.watermark:
            _, key = heapq.heappop(self._deadlines)
            self._settle(key, closed, force=False)

    def _close_earliest(self, closed: dict[str, Incident]) -> None:
        while len(self._open) > self._max_open and self._deadlines:
            _, key = heapq.heappop(self._deadlines)
            if self._settle(key, closed, force=True):
                self.forced_closures += 1

    def _settle(self, key: str, closed: dict[str, Incident], *, force: bool) -> bool:
        """Close the incident if its (current) deadline passed or `force`; else re-queue it."""
        entry = self._open.get(key)
        if entry is None:
            return False
        incident, detector = entry
        deadline = self._deadline(incident)
        assert self.watermark is not None
        if not force and deadline >= self.watermark:
            heapq.heappush(self._deadlines, (deadline, key))
            return False
        del self._open[key]
        detector.open.pop((incident.key, incident.qualifier), None)
        closed[key] = incident.snapshot(IncidentStatus.CLOSED)
        self.closed += 1
        return True
