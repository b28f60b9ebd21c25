"""dedupe: count each action of a session once when it arrives by two streams.

cowrie writes one JSON log record per action and, over hpfeeds, one summary per session at
close; a deployment that ships both would count every login twice. The summary adapter
emits the same `action` and field values as the per-event adapter, so an action is
identified by (sensor, session, action, username, password, command, url, and sha256 when
there is no url). For
each session the transform keeps, per key, how many events of each stream are still
unmatched; an event that meets an unmatched event of the *other* stream is its duplicate
and is dropped (the caller counts it). Repeats within one stream are real repeats and kept.

State is bounded: at most `max_sessions` sessions (least recently used evicted first) and
none older than `ttl_seconds` of event time since the session was last touched; both kinds
of eviction are counted.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from honeyatlas.event import Event

Key = tuple[str | None, ...]


class _Session:
    __slots__ = ("last_seen", "unmatched")

    def __init__(self, last_seen: datetime) -> None:
        self.last_seen = last_seen
        # key -> [unmatched from stream 0, unmatched from stream 1]
        self.unmatched: dict[Key, list[int]] = {}


class SessionDeduplicator:
    def __init__(self, *, ttl_seconds: float, max_sessions: int) -> None:
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self.evicted_by_size = 0
        self.evicted_by_age = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def keep(self, event: Event, stream: int) -> bool:
        """False when `event` (from stream 0 or 1) duplicates one the other stream brought."""
        if event.session is None:
            return True
        slot = (event.sensor, event.session)
        session = self._sessions.get(slot)
        if session is None:
            session = self._sessions[slot] = _Session(event.ts)
            self._evict(event.ts)
        else:
            self._sessions.move_to_end(slot)
            if event.ts > session.last_seen:
                session.last_seen = event.ts
        # A download is identified by its URL when it has one: the session summary lists URLs
        # and hashes separately, so it cannot always pair them, while the log can.
        digest = event.sha256 if event.url is None else None
        key = (event.action, event.username, event.password, event.command, event.url, digest)
        counts = session.unmatched.setdefault(key, [0, 0])
        other = 1 - stream
        if counts[other] > 0:
            counts[other] -= 1
            return False
        counts[stream] += 1
        return True

    def _evict(self, now: datetime) -> None:
        # LRU order approximates age order; stop at the first session still fresh.
        while self._sessions:
            slot, oldest = next(iter(self._sessions.items()))
            if (now - oldest.last_seen).total_seconds() <= self._ttl:
                break
            del self._sessions[slot]
            self.evicted_by_age += 1
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
            self.evicted_by_size += 1
