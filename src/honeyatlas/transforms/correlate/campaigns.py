"""Campaign detector: many sources sharing one fingerprint within a window.

Fingerprints (`honeyatlas.incident.Fingerprint`), taken from each event:
- credentials: the first `credential_count` distinct username/password pairs of a session,
  as a sorted list (so parallel connections of one tool, which interleave, still agree);
- commands: the first `command_count` commands of a session, in order, whitespace-collapsed;
- download_host: the host of a URL a sensor was made to fetch (file_download events);
- client_version: the SSH client banner, unless it starts with one of the configured
  common prefixes (stock OpenSSH and PuTTY are shared by everyone and prove nothing).
A session is (sensor, session id), or (sensor, source) when the honeypot has no session.
Sessions with fewer than `command_count` commands or `credential_count` credentials give
no such fingerprint.

The incident opens when the `min_sources`-th distinct source shows the fingerprint within
`window_seconds`, and lists its members (sources) in the order they joined. State is
bounded: `max_sessions` sessions and `max_fingerprints` fingerprints (LRU), at most
`max_hits_per_fingerprint` sources per fingerprint window; every eviction is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from honeyatlas.event import Event, Kind
from honeyatlas.incident import Fingerprint, IncidentKind, Step
from honeyatlas.transforms.correlate._open import BoundedMap, OpenIncident

_PART_LIMIT = 256  # characters of one credential or command inside a fingerprint value


class _Session:
    __slots__ = ("commands", "credentials")

    def __init__(self) -> None:
        self.credentials: list[str] = []
        self.commands: list[str] = []


class _Sources:
    """Sources seen with one fingerprint: source -> [first ts, last ts, sensor], oldest first."""

    __slots__ = ("latest", "sources")

    def __init__(self) -> None:
        self.sources: OrderedDict[str, list] = OrderedDict()
        self.latest: datetime | None = None


def _collapse(text: str) -> str:
    return " ".join(text.split())[:_PART_LIMIT]


class CampaignDetector:
    def __init__(self, *, min_sources: int, window_seconds: float, credential_count: int, command_count: int,
                 ignore_client_versions: list[str], max_sessions: int, max_fingerprints: int,
                 max_hits_per_fingerprint: int, max_members: int) -> None:
        self._min_sources = min_sources
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._credential_count = credential_count
        self._command_count = command_count
        self._ignored_banners = tuple(ignore_client_versions)
        self._max_hits = max_hits_per_fingerprint
        self._max_members = max_members
        self._sessions: BoundedMap[tuple[str, str], _Session] = BoundedMap(max_sessions)
        self._fingerprints: BoundedMap[tuple[str, str], _Sources] = BoundedMap(max_fingerprints)
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0

    @property
    def tracked(self) -> int:
        return len(self._fingerprints) + len(self._sessions)

    @property
    def evictions(self) -> int:
        return self._sessions.evictions + self._fingerprints.evictions + self.dropped_hits

    def fingerprints(self, event: Event) -> list[tuple[Fingerprint, str]]:
        """The fingerprints this event completes (most events complete none)."""
        found: list[tuple[Fingerprint, str]] = []
        kind = event.kind
        if kind is Kind.LOGIN_ATTEMPT and (event.username is not None or event.password is not None):
            session = self._session(event)
            if len(session.credentials) < self._credential_count:
                pair = f"{_collapse(event.username or '')}/{_collapse(event.password or '')}"
                if pair not in session.credentials:
                    session.credentials.append(pair)
                    if len(session.credentials) == self._credential_count:
                        found.append((Fingerprint.CREDENTIALS, ", ".join(sorted(session.credentials))))
        elif kind is Kind.COMMAND and event.command:
            session = self._session(event)
            if len(session.commands) < self._command_count:
                session.commands.append(_collapse(event.command))
                if len(session.commands) == self._command_count:
                    found.append((Fingerprint.COMMANDS, " ; ".join(session.commands)))
        elif kind is Kind.FILE_DOWNLOAD and event.url:
            try:
                host = urlsplit(event.url).hostname
            except ValueError:
                host = None
            if host:
                found.append((Fingerprint.DOWNLOAD_HOST, host))
        if event.client_version and not event.client_version.startswith(self._ignored_banners):
            found.append((Fingerprint.CLIENT_VERSION, event.client_version))
        return found

    def _session(self, event: Event) -> _Session:
        key = (event.sensor, event.session or f"src:{event.src_ip}")
        session = self._sessions.get(key)
        if session is None:
            session = _Session()
            self._sessions.put(key, session)
        return session

    def observe(self, event: Event) -> list[OpenIncident]:
        if event.src_ip is None:
            return []
        changed = []
        for fingerprint, value in self.fingerprints(event):
            incident = self.hit(fingerprint, value, event)
            if incident is not None:
                changed.append(incident)
        return changed

    def hit(self, fingerprint: Fingerprint, value: str, event: Event) -> OpenIncident | None:
        """Count `event`'s source for one fingerprint it completed; the incident it opened or
        grew, if any. (`observe` = `fingerprints` + `hit`; a cluster runs them apart.)"""
        key = (value, str(fingerprint))
        window = self._fingerprints.get(key)
        if window is None:
            window = _Sources()
            self._fingerprints.put(key, window)
        ts, source = event.ts, event.src_ip
        assert source is not None
        if window.latest is None or ts > window.latest:
            window.latest = ts
        seen = window.sources.get(source)
        if seen is None:
            window.sources[source] = [ts, ts, event.sensor]
            while len(window.sources) > self._max_hits:
                window.sources.popitem(last=False)
                self.dropped_hits += 1
        else:
            seen[1] = max(seen[1], ts)
            window.sources.move_to_end(source)
        horizon = window.latest - self._window
        while window.sources and next(iter(window.sources.values()))[1] < horizon:
            window.sources.popitem(last=False)
        incident = self.open.get(key)
        if incident is None:
            if len(window.sources) < self._min_sources:
                return None
            incident = OpenIncident(kind=IncidentKind.CAMPAIGN, key=value, qualifier=str(fingerprint),
                                    fingerprint=fingerprint, opened_at=ts, window_seconds=self._window_seconds,
                                    max_members=self._max_members)
            self.open[key] = incident
            for member, (first, _, sensor) in sorted(window.sources.items(), key=lambda kv: kv[1][0]):
                self._join(incident, member, sensor, first)
            incident.event_count = len(window.sources)
        else:
            self._join(incident, source, event.sensor, ts)
            incident.event_count += 1
        if ts > incident.last_seen:
            incident.last_seen = ts
        incident.summary = f"{incident.source_count} sources shared one {fingerprint.replace('_', ' ')}"
        return incident

    @staticmethod
    def _join(incident: OpenIncident, source: str, sensor: str, ts: datetime) -> None:
        if incident.add_member(source, Step(ts=ts, sensor=sensor, source=source)):
            incident.add_source(source)
        incident.sensors[sensor] = None
