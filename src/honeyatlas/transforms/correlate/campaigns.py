"""Campaign detector: many sources sharing keys that carry information, within a window.

Fingerprints (`honeyatlas.incident.Fingerprint`), taken from each event:
- credentials: the first `credential_count` distinct username/password pairs of a session,
  as a sorted list (so parallel connections of one tool, which interleave, still agree);
- commands: the first `command_count` commands of a session, in order, whitespace-collapsed;
- download_host: the host of a URL a sensor was made to fetch (file_download events), or
  for a public file host (`shared_hosts`) the host and the owner's part of the path
  (`honeyatlas.incident.download_key`);
- client_version: the SSH client banner, unless it starts with one of the configured
  common prefixes (stock OpenSSH and PuTTY are shared by everyone and prove nothing).
A session is (sensor, session id), or (sensor, source) when the honeypot has no session.
Sessions with fewer than `command_count` commands or `credential_count` credentials give
no such fingerprint.

The rule (issue 15, docs/correlation.md): a campaign opens when `min_sources` distinct
sources within `window_seconds` share a key that is rare on the background, and that key
is strong (a credential list, a download host) or they also share a second rare key. A weak
key (a banner, a command sequence) never opens one alone. The incident lists its members
(sources) in the order they joined, and `keys`: the keys that opened it, each with how rare
it was, and a `confidence` derived from them (`confidence()`).

Rare: a fingerprint is background when `max_background_sources` or more sources showed it
before the current window: every source that leaves a fingerprint's window adds one to its
background count, which halves every `background_half_life_seconds` of event time. A
coordinated campaign shows a value that was quiet before it; a library banner or a public
host never stops trickling in. The count lives in the fingerprint's own state, so a
cluster's keyed stage computes it alone. A credential list or command sequence can also be
new while every part of it is common (bots try random subsets of one dictionary): the
detector learns, per credential pair and per command, how many distinct sources used it
(decayed alike); a list or sequence whose every part reached `common_part_sources` is
`common` and opens nothing. Credential pairs of `known_credentials` (the shipped list of
bots' dictionaries, transforms/correlate/known.py) are common from the start.

Second keys: `fingerprints` remembers, per source, the rare keys it completed within the
window, and when it completes another one it also yields a pair hit (`pair` = the other
key) for each: W + K routed with W, and K + W with K. The pair's own window and background
live in the first key's state, keyed by both; so "these sources share W and K, and few
showed W and K together before" is decided where W lives, in one process as in a cluster.

Warm-up: for `warmup_seconds` of event time after its first key, the detector has not seen
a window of background, so it cannot know a key's prevalence: a campaign that opens then
is marked by a confidence of at most `WARMUP_CONFIDENCE`, below the default export
threshold. State is bounded: `max_sessions` sessions and sources' keys, `max_fingerprints`
fingerprints and pairs and `max_parts` parts (LRU; a part tells at most
`common_part_sources` sources apart), at most `max_hits_per_fingerprint` sources per
window, `MAX_KEYS_PER_SOURCE` keys per source and `MAX_PAIRS_PER_KEY` second keys per key;
every eviction is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from honeyatlas.event import Event, Kind
from honeyatlas.incident import Fingerprint, IncidentKind, MatchedKey, Step, download_key
from honeyatlas.incident import shared_hosts as normalised_hosts
from honeyatlas.transforms.correlate._open import BoundedMap, OpenIncident

# Keys that never open a campaign alone: thousands of unrelated bots share a client
# library's banner or a recon sequence; a credential list or a download host of its own is
# what one operator's tooling leaves.
WEAK = frozenset({Fingerprint.CLIENT_VERSION, Fingerprint.COMMANDS})
# Evidence of one rare key (confidence()): a strong key alone gives 0.7, a weak key 0.4, so
# two weak keys give 0.64 and a strong key with one more 0.82; the default export threshold
# (0.5) takes each of those and nothing opened while learning.
STRONG_EVIDENCE = 0.7
WEAK_EVIDENCE = 0.4
WARMUP_CONFIDENCE = 0.25  # at most, while the background is not yet known
MAX_KEYS_PER_SOURCE = 16  # rare keys remembered per source within the window (a botnet member shows 4)
MAX_PAIRS_PER_KEY = 16  # second keys remembered per key
_PART_LIMIT = 256  # characters of one credential or command inside a fingerprint value
# Sensors remembered per source and fingerprint before the campaign opens: bounds the state
# a source can add while still listing every sensor of an ordinary honeynet.
_MAX_SENSORS_PER_SOURCE = 64

# (fingerprint, value, common, pair): `pair` is "" for the key itself, else the second key
# ("<fingerprint>:<value>") the same source showed within the window.
Found = tuple[Fingerprint, str, bool, str]


def confidence(keys: list[MatchedKey] | tuple[MatchedKey, ...], max_background: float, *, warming: bool) -> float:
    """0-1 from the rule: each key is evidence (strong 0.7, weak 0.4) scaled by its rarity
    (1 with no background, 0.5 at the background threshold), combined as independent
    evidence (1 - the product of the doubts); at most WARMUP_CONFIDENCE while warming."""
    doubt = 1.0
    for key in keys:
        rarity = max(0.0, 1.0 - key.background / (2 * max_background))
        doubt *= 1.0 - (STRONG_EVIDENCE if key.strong else WEAK_EVIDENCE) * rarity
    value = round(1.0 - doubt, 2)
    return min(value, WARMUP_CONFIDENCE) if warming else value


class _Session:
    __slots__ = ("commands", "credentials")

    def __init__(self) -> None:
        self.credentials: list[str] = []
        self.commands: list[str] = []


class _Sources:
    """Sources seen with one fingerprint (or one pair): source -> [first ts, last ts,
    sensors], oldest first (every sensor a source showed it on, so the incident lists them
    whatever order the hits came in: across workers they come in another order than in one
    process); the decayed count of sources that showed it before the window (`background`,
    as of `background_at`); and for a key, the second keys its sources showed (`pairs`)."""

    __slots__ = ("background", "background_at", "latest", "pairs", "sources")

    def __init__(self) -> None:
        self.sources: OrderedDict[str, list] = OrderedDict()
        self.latest: datetime | None = None
        self.background = 0.0
        self.background_at: datetime | None = None
        self.pairs: dict[str, None] | None = None


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


def credential_part(pair: str) -> str:
    """A configured "user/password" as the detector writes a session's pair (the user is
    what comes before the first "/", whitespace collapsed in both)."""
    user, _, password = pair.partition("/")
    return f"{_collapse(user)}/{_collapse(password)}"


class CampaignDetector:
    def __init__(self, *, min_sources: int, window_seconds: float, credential_count: int, command_count: int,
                 ignore_client_versions: list[str], max_sessions: int, max_fingerprints: int,
                 max_hits_per_fingerprint: int, max_members: int, background_half_life_seconds: float,
                 max_background_sources: float, common_part_sources: int, max_parts: int,
                 warmup_seconds: float, known_credentials: frozenset[str] = frozenset(),
                 shared_hosts: tuple[str, ...] = ()) -> None:
        self._common_part = common_part_sources
        self._known_pairs = frozenset(credential_part(pair) for pair in known_credentials)
        self._shared_hosts = normalised_hosts(shared_hosts)
        self._min_sources = min_sources
        self._half_life = background_half_life_seconds
        self._max_background = max_background_sources
        self._window = timedelta(seconds=window_seconds)
        self._window_seconds = window_seconds
        self._warmup = timedelta(seconds=warmup_seconds)
        self._credential_count = credential_count
        self._command_count = command_count
        self._ignored_banners = tuple(ignore_client_versions)
        self._max_hits = max_hits_per_fingerprint
        self._max_members = max_members
        self._sessions: BoundedMap[tuple[str, str], _Session] = BoundedMap(max_sessions)
        self._keys: BoundedMap[str, dict[tuple[Fingerprint, str], datetime]] = BoundedMap(max_sessions)
        self._fingerprints: BoundedMap[tuple[str, str], _Sources] = BoundedMap(max_fingerprints)
        self._parts: BoundedMap[tuple[str, str], _Part] = BoundedMap(max_parts)
        self._first: datetime | None = None  # event time of the first key: the warm-up starts there
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.dropped_hits = 0
        self.dropped_keys = 0  # a source's keys or a key's second keys past their cap
        self.background_refusals = 0  # hits that reached min_sources on a background or common fingerprint
        self.weak_refusals = 0  # hits of a weak key that reached min_sources without a second key

    @property
    def tracked(self) -> int:
        return len(self._fingerprints) + len(self._sessions) + len(self._parts) + len(self._keys)

    @property
    def evictions(self) -> int:
        return (self._sessions.evictions + self._fingerprints.evictions + self._parts.evictions
                + self._keys.evictions + self.dropped_hits + self.dropped_keys)

    def fingerprints(self, event: Event) -> list[Found]:
        """The fingerprints this event completes (most events complete none), each with
        whether it is common (every part of it is used by many sources), then the pair hits
        of each rare one with the source's other rare keys of the window."""
        found: list[Found] = []
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
                                      self._common("p", session.credentials, event.ts), ""))
        elif kind is Kind.COMMAND and event.command:
            session = self._session(event)
            if len(session.commands) < self._command_count:
                session.commands.append(_collapse(event.command))
                self._learn("c", session.commands[-1], event)
                if len(session.commands) == self._command_count:
                    found.append((Fingerprint.COMMANDS, " ; ".join(session.commands),
                                  self._common("c", session.commands, event.ts), ""))
        elif kind is Kind.FILE_DOWNLOAD and event.url:
            host = download_key(event.url, self._shared_hosts)
            if host:
                found.append((Fingerprint.DOWNLOAD_HOST, host, False, ""))
        if event.client_version and not event.client_version.startswith(self._ignored_banners):
            found.append((Fingerprint.CLIENT_VERSION, event.client_version, False, ""))
        if found and event.src_ip is not None:
            found += self._pairs(event.src_ip, found, event.ts)
        return found

    def _pairs(self, source: str, found: list[Found], now: datetime) -> list[Found]:
        """Remember the source's rare keys; each new one pairs with the others of the window."""
        keys = self._keys.get(source)
        if keys is None:
            keys = {}
            self._keys.put(source, keys)
        horizon = now - self._window
        for stale in [key for key, seen in keys.items() if seen < horizon]:
            del keys[stale]
        pairs: list[Found] = []
        for fingerprint, value, common, _ in found:
            if common:
                continue  # no evidence: common parts alone, never a first or a second key
            key = (fingerprint, value)
            for other, other_value in keys:
                if (other, other_value) != key:
                    pairs.append((fingerprint, value, False, f"{other}:{other_value}"))
                    pairs.append((other, other_value, False, f"{fingerprint}:{value}"))
            keys.pop(key, None)
            keys[key] = now
            if len(keys) > MAX_KEYS_PER_SOURCE:
                del keys[next(iter(keys))]
                self.dropped_keys += 1
        return pairs

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
            if kind == "p" and text in self._known_pairs:
                continue  # known before any traffic: every bot tries it
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
        changed: dict[str, OpenIncident] = {}
        for fingerprint, value, common, pair in self.fingerprints(event):
            incident = self.hit(fingerprint, value, event, common=common, pair=pair)
            if incident is not None:
                changed[incident.id] = incident
        return list(changed.values())

    def hit(self, fingerprint: Fingerprint, value: str, event: Event, *, common: bool = False,
            pair: str = "") -> OpenIncident | None:
        """Count `event`'s source for one fingerprint it completed (or, with `pair`, for the
        fingerprint together with a second key); the incident it opened or changed, if any.
        A common hit counts but opens nothing. (`observe` = `fingerprints` + `hit`; a
        cluster runs them apart.)"""
        ts, source = event.ts, event.src_ip
        assert source is not None
        if self._first is None:
            self._first = ts
        key = (value, str(fingerprint))
        window = self._window_of(key)
        if pair:
            return self._pair_hit(fingerprint, value, key, window, pair, event)
        self._add(window, source, ts, event.sensor)
        incident = self.open.get(key)
        if incident is None:
            if len(window.sources) < self._min_sources:
                return None
            if common or self._background(window, window.latest) >= self._max_background:
                self.background_refusals += 1
                return None
            if fingerprint in WEAK:
                self.weak_refusals += 1  # opens on a pair hit, when a second key is shared
                return None
            incident = self._open(fingerprint, value, key, window, ts)
        else:
            self._join(incident, source, event.sensor, ts)
            incident.event_count += 1
        if ts > incident.last_seen:
            incident.last_seen = ts
        self._summarise(incident)
        return incident

    def _pair_hit(self, fingerprint: Fingerprint, value: str, key: tuple[str, str], window: _Sources, pair: str,
                  event: Event) -> OpenIncident | None:
        ts = event.ts
        assert event.src_ip is not None
        both = self._window_of((value, f"{fingerprint}+{pair}"))
        self._add(both, event.src_ip, ts, event.sensor)
        if window.pairs is None:
            window.pairs = {}
        window.pairs.pop(pair, None)
        window.pairs[pair] = None
        if len(window.pairs) > MAX_PAIRS_PER_KEY:
            del window.pairs[next(iter(window.pairs))]
            self.dropped_keys += 1
        if len(both.sources) < self._min_sources:
            return None
        incident = self.open.get(key)
        if incident is None:
            if (self._background(window, window.latest or ts) >= self._max_background
                    or self._background(both, ts) >= self._max_background):
                self.background_refusals += 1
                return None
            return self._open(fingerprint, value, key, window, ts)
        if pair in {f"{k.fingerprint}:{k.value}" for k in incident.keys} or self._background(both, ts) >= self._max_background:
            return None
        incident.keys = (*incident.keys, self._second_key(pair, both, ts))
        self._summarise(incident)
        return incident

    def _open(self, fingerprint: Fingerprint, value: str, key: tuple[str, str], window: _Sources,
              ts: datetime) -> OpenIncident:
        incident = OpenIncident(kind=IncidentKind.CAMPAIGN, key=value, qualifier=str(fingerprint),
                                fingerprint=fingerprint, opened_at=ts, window_seconds=self._window_seconds,
                                max_members=self._max_members)
        assert self._first is not None
        incident.warming = ts - self._first < self._warmup
        keys = [MatchedKey(fingerprint=fingerprint, value=value, sources=len(window.sources),
                           background=round(self._background(window, window.latest or ts), 2),
                           strong=fingerprint not in WEAK)]
        for pair in window.pairs or ():
            both = self._fingerprints.get((value, f"{fingerprint}+{pair}"))
            if (both is not None and len(both.sources) >= self._min_sources
                    and self._background(both, ts) < self._max_background):
                keys.append(self._second_key(pair, both, ts))
        incident.keys = tuple(keys)
        self.open[key] = incident
        for member, (first, _, sensors) in sorted(window.sources.items(), key=lambda kv: kv[1][0]):
            for sensor in sensors:
                self._join(incident, member, sensor, first)
        incident.event_count = len(window.sources)
        self._summarise(incident)
        return incident

    def _second_key(self, pair: str, both: _Sources, now: datetime) -> MatchedKey:
        name, value = pair.split(":", 1)
        fingerprint = Fingerprint(name)
        return MatchedKey(fingerprint=fingerprint, value=value, sources=len(both.sources),
                          background=round(self._background(both, now), 2), strong=fingerprint not in WEAK)

    def _summarise(self, incident: OpenIncident) -> None:
        incident.confidence = confidence(incident.keys, self._max_background, warming=incident.warming)
        first, *more = incident.keys
        text = (f"{incident.source_count} sources shared one {first.fingerprint.replace('_', ' ')}, "
                f"rare on the background ({first.background:g} other sources showed it before; "
                f"fewer than {self._max_background:g} is rare)")
        if more:
            text += "; also shared: " + ", ".join(
                f"{k.fingerprint.replace('_', ' ')} ({k.sources} sources, {k.background:g} before)" for k in more)
        text += f"; confidence {incident.confidence:g}"
        if incident.warming:
            text += " (opened while the background was still being learned)"
        incident.summary = text

    def _window_of(self, key: tuple[str, str]) -> _Sources:
        window = self._fingerprints.get(key)
        if window is None:
            window = _Sources()
            self._fingerprints.put(key, window)
        return window

    def _add(self, window: _Sources, source: str, ts: datetime, sensor: str) -> None:
        """The source showed the window's key at `ts`; sources past the window leave it."""
        if window.latest is None or ts > window.latest:
            window.latest = ts
        seen = window.sources.get(source)
        if seen is None:
            window.sources[source] = [ts, ts, {sensor: None}]
            while len(window.sources) > self._max_hits:
                self._leave(window, window.sources.popitem(last=False)[1][1])
                self.dropped_hits += 1
        else:
            seen[1] = max(seen[1], ts)
            if len(seen[2]) < _MAX_SENSORS_PER_SOURCE:
                seen[2].setdefault(sensor, None)
            window.sources.move_to_end(source)
        horizon = window.latest - self._window
        while window.sources and next(iter(window.sources.values()))[1] < horizon:
            self._leave(window, window.sources.popitem(last=False)[1][1])

    def _background(self, window: _Sources, now: datetime | None) -> float:
        if window.background_at is None or now is None:
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
