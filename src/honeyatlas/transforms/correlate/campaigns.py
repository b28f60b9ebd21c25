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
`window_seconds`, unless the fingerprint is background (below), and lists its members
(sources) in the order they joined.

Background (issue 15): unrelated bots share library banners, dictionary credentials,
recon commands and public download hosts. A fingerprint is background when
`max_background_sources` or more sources showed it before the current window: every
source that leaves a fingerprint's window adds one to its background count, which halves
every `background_half_life_seconds` of event time. A coordinated campaign shows a value
that was quiet before it; a library banner or a public host never stops trickling in. The
count lives in the fingerprint's own state, so a cluster's keyed stage computes it alone.
A credential list or command sequence can also be new while every part of it is common:
bots try random subsets of one dictionary and run the same recon commands. So the detector
also learns, per credential pair and per command, how many distinct sources used it
(decayed alike); a list or sequence whose every part reached `common_part_sources` is
`common` (`fingerprints` says so with each value it finds, and a cluster's source stage
carries that in the hit), and a common hit never opens a campaign. State is
bounded: `max_sessions` sessions, `max_fingerprints` fingerprints and `max_parts` parts
(LRU; a part tells at most `common_part_sources` sources apart), at most
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
# Sensors remembered per source and fingerprint before the campaign opens: bounds the state
# a source can add while still listing every sensor of an ordinary honeynet.
_MAX_SENSORS_PER_SOURCE = 64


class _Session:
    __slots__ = ("commands", "credentials")

    def __init__(self) -> None:
        self.credentials: list[str] = []
        self.commands: list[str] = []


class _Sources:
    """Sources seen with one fingerprint: source -> [first ts, last ts, sensors], oldest first
    (every sensor a source showed it on, so the incident lists them whatever order the hits
    came in: across workers they come in another order than in one process);
    and the decayed count of sources that showed it before the window (`background`, as of
    `background_at`)."""

    __slots__ = ("background", "background_at", "latest", "sources")

    def __init__(self) -> None:
        self.sources: OrderedDict[str, list] = OrderedDict()
        self.latest: datetime | None = None
        self.background = 0.0
        self.background_at: datetime | None = None


class _Part:
    """One credential pair or command: the decayed count of distinct sources that used it.
    `sources` tells them apart until the count first reaches the common threshold."""

    __slots__ = ("at", "count", "sources")

    def __init__(self, at: datetime) -> None:
        self.count = 0.0
        self.at = at
        self.sources: set[str] | None = set()


def _collapse(text: str) -> str:
    return " ".join(text.split())[:_PART_LIMIT]


class CampaignDetector:
    def __init__(self, *, min_sources: int, window_seconds: float, credential_count: int, command_count: int,
                 ignore_client_versions: list[str], max_sessions: int, max_fingerprints: int,
                 max_hits_per_fingerprint: int, max_members: int, background_half_life_seconds: float,
                 max_background_sources: float, common_part_sources: int, max_parts: int) -> None:
        self._common_part = common_part_sources
        self._min_sources = min_sources
        self._half_life = background_half_life_seconds
        self._max_background = max_background_sources
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._credential_count = credential_count
        self._command_count = command_count
        self._ignored_banners = tuple(ignore_client_versions)
        self._max_hits = max_hits_per_fingerprint
        self._max_members = max_members
        self._sessions: BoundedMap[tuple[str, str], _Session] = BoundedMap(max_sessions)
        self._fingerprints: BoundedMap[tuple[str, str], _Sources] = BoundedMap(max_fingerprints)
        self._parts: BoundedMap[tuple[str, str], _Part] = BoundedMap(max_parts)
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0
        self.background_refusals = 0  # hits that reached min_sources on a background or common fingerprint

    @property
    def tracked(self) -> int:
        return len(self._fingerprints) + len(self._sessions) + len(self._parts)

    @property
    def evictions(self) -> int:
        return self._sessions.evictions + self._fingerprints.evictions + self._parts.evictions + self.dropped_hits

    def fingerprints(self, event: Event) -> list[tuple[Fingerprint, str, bool]]:
        """The fingerprints this event completes (most events complete none), each with
        whether it is common (every part of it is used by many sources)."""
        found: list[tuple[Fingerprint, str, bool]] = []
        kind = event.kind
        if kind is Kind.LOGIN_ATTEMPT and (event.username is not None or event.password is not None):
            session = self._session(event)
            if len(session.credentials) < self._credential_count:
                pair = f"{_collapse(event.username or '')}/{_collapse(event.password or '')}"
                if pair not in session.credentials:
                    session.credentials.append(pair)
                    self._learn("p", pair, event)
                    if len(session.credentials) == self._credential_count:
                        found.append((Fingerprint.CREDENTIALS, ", ".join(sorted(session.credentials)),
                                      self._common("p", session.credentials, event.ts)))
        elif kind is Kind.COMMAND and event.command:
            session = self._session(event)
            if len(session.commands) < self._command_count:
                session.commands.append(_collapse(event.command))
                self._learn("c", session.commands[-1], event)
                if len(session.commands) == self._command_count:
                    found.append((Fingerprint.COMMANDS, " ; ".join(session.commands),
                                  self._common("c", session.commands, event.ts)))
        elif kind is Kind.FILE_DOWNLOAD and event.url:
            try:
                host = urlsplit(event.url).hostname
            except ValueError:
                host = None
            if host:
                found.append((Fingerprint.DOWNLOAD_HOST, host, False))
        if event.client_version and not event.client_version.startswith(self._ignored_banners):
            found.append((Fingerprint.CLIENT_VERSION, event.client_version, False))
        return found

    def _decay(self, value: float, at: datetime, now: datetime) -> float:
        if now <= at:
            return value
        return value * 0.5 ** ((now - at).total_seconds() / self._half_life)

    def _learn(self, kind: str, text: str, event: Event) -> None:
        """Count the event's source once for this part (and again once the part was
        common and faded, which is when its sources are told apart anew)."""
        if event.src_ip is None:
            return
        part = self._parts.get((kind, text))
        if part is None:
            part = _Part(event.ts)
            self._parts.put((kind, text), part)
        count = self._decay(part.count, part.at, event.ts)
        if part.sources is None:
            if count >= self._common_part:
                part.count, part.at = count + 1, max(part.at, event.ts)
                return
            part.sources = set()  # faded below common: distinct sources again
        if event.src_ip in part.sources:
            return
        part.sources.add(event.src_ip)
        part.count, part.at = count + 1, max(part.at, event.ts)
        if part.count >= self._common_part:
            part.sources = None  # common: no need to tell its sources apart any more

    def _common(self, kind: str, texts: list[str], now: datetime) -> bool:
        for text in texts:
            part = self._parts.get((kind, text))
            if part is None or self._decay(part.count, part.at, now) < self._common_part:
                return False
        return True

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
        for fingerprint, value, common in self.fingerprints(event):
            incident = self.hit(fingerprint, value, event, common=common)
            if incident is not None:
                changed.append(incident)
        return changed

    def hit(self, fingerprint: Fingerprint, value: str, event: Event, *, common: bool = False) -> OpenIncident | None:
        """Count `event`'s source for one fingerprint it completed; the incident it opened or
        grew, if any; a `common` hit counts but opens nothing. (`observe` = `fingerprints` +
        `hit`; a cluster runs them apart.)"""
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
            window.sources[source] = [ts, ts, {event.sensor: None}]
            while len(window.sources) > self._max_hits:
                self._leave(window, window.sources.popitem(last=False)[1][1])
                self.dropped_hits += 1
        else:
            seen[1] = max(seen[1], ts)
            if len(seen[2]) < _MAX_SENSORS_PER_SOURCE:
                seen[2].setdefault(event.sensor, None)
            window.sources.move_to_end(source)
        horizon = window.latest - self._window
        while window.sources and next(iter(window.sources.values()))[1] < horizon:
            self._leave(window, window.sources.popitem(last=False)[1][1])
        incident = self.open.get(key)
        if incident is None:
            if len(window.sources) < self._min_sources:
                return None
            background = self._background(window, window.latest)
            if common or background >= self._max_background:
                self.background_refusals += 1
                return None
            incident = OpenIncident(kind=IncidentKind.CAMPAIGN, key=value, qualifier=str(fingerprint),
                                    fingerprint=fingerprint, opened_at=ts, window_seconds=self._window_seconds,
                                    max_members=self._max_members)
            incident.why = (f"rare on the background: {background:.1f} other sources showed it before "
                            f"(a campaign needs fewer than {self._max_background:g})")
            self.open[key] = incident
            for member, (first, _, sensors) in sorted(window.sources.items(), key=lambda kv: kv[1][0]):
                for sensor in sensors:
                    self._join(incident, member, sensor, first)
            incident.event_count = len(window.sources)
        else:
            self._join(incident, source, event.sensor, ts)
            incident.event_count += 1
        if ts > incident.last_seen:
            incident.last_seen = ts
        incident.summary = f"{incident.source_count} sources shared one {fingerprint.replace('_', ' ')}; {incident.why}"
        return incident

    def _background(self, window: _Sources, now: datetime) -> float:
        if window.background_at is None:
            return window.background
        return self._decay(window.background, window.background_at, now)

    def _leave(self, window: _Sources, last_seen: datetime) -> None:
        """A source left the fingerprint's window: it counts as background from now on."""
        assert window.latest is not None
        weight = 0.5 ** (max(0.0, (window.latest - last_seen).total_seconds()) / self._half_life)
        window.background = self._background(window, window.latest) + weight
        window.background_at = window.latest

    @staticmethod
    def _join(incident: OpenIncident, source: str, sensor: str, ts: datetime) -> None:
        if incident.add_member(source, Step(ts=ts, sensor=sensor, source=source)):
            incident.add_source(source)
        incident.sensors[sensor] = None
