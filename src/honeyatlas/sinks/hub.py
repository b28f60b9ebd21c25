"""The live hub: fan-out of new events to WebSocket clients in batched frames.

Every `frame_interval_seconds` the hub encodes the events published since the last tick
into ONE frame, once, and offers that same frame to every client. Each client has a
bounded queue measured in events; when a slow client's queue is full its oldest frames are
dropped, counted, and the client is told how many events it lost. Memory is bounded by
`client_queue_events` per client and `max_clients`. The hub also keeps the most recent
events (`snapshot_events`) for the snapshot a client gets on connect.

Clients of different audiences see different views of the same events: the full view, or a
redacted one (the public map's `PublicView`) given by the composition root. A frame is
encoded once per view that has clients, never once per client.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from honeyatlas.event import Event
from honeyatlas.incident import Incident, IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.tasks import cancel_and_wait

_encoder = msgspec.json.Encoder()
LIVE_INCIDENT_MEMBERS = 50  # sources and timeline steps per incident in live frames
SNAPSHOT_INCIDENTS = 200  # open incidents a new client gets, most recently active first


def _live_view(event: Event) -> Event:
    # The raw record can be 8 KiB; the map never shows it, drill-down reads it from the API.
    return msgspec.structs.replace(event, raw=None) if event.raw is not None else event


def _live_incident(incident: Incident) -> Incident:
    # Members beyond the first ones stay in the API (/api/v1/incidents/{id}); frames stay small.
    if len(incident.sources) <= LIVE_INCIDENT_MEMBERS and len(incident.timeline) <= LIVE_INCIDENT_MEMBERS:
        return incident
    return msgspec.structs.replace(incident, sources=incident.sources[:LIVE_INCIDENT_MEMBERS],
                                   timeline=incident.timeline[:LIVE_INCIDENT_MEMBERS])


class _Snapshot(msgspec.Struct, tag="snapshot", tag_field="type"):
    events: list[Event]
    server_time: datetime
    incidents: list[Incident] = []


class _Incidents(msgspec.Struct, tag="incidents", tag_field="type"):
    incidents: list[Incident]


class _Events(msgspec.Struct, tag="events", tag_field="type"):
    events: list[Event]


class _Dropped(msgspec.Struct, tag="dropped", tag_field="type"):
    count: int


class _Heartbeat(msgspec.Struct, tag="heartbeat", tag_field="type"):
    server_time: datetime


FULL_VIEW = "full"


class View(Protocol):
    """A redaction applied to what a group of clients is sent."""

    def event(self, event: Event) -> Event: ...

    def incident(self, incident: Incident) -> Incident: ...


class LiveClient:
    """One subscriber's bounded queue of encoded frames, in one view."""

    def __init__(self, max_events: int, view: str = FULL_VIEW) -> None:
        self.view = view
        self._frames: collections.deque[tuple[str, int]] = collections.deque()
        self._queued_events = 0
        self._max_events = max_events
        self._wakeup = asyncio.Event()
        self.dropped_unreported = 0
        self.closed = False

    def offer(self, frame: str, event_count: int) -> int:
        """Queue a frame; returns how many events were dropped to make room."""
        self._frames.append((frame, event_count))
        self._queued_events += event_count
        dropped = 0
        while self._queued_events > self._max_events and len(self._frames) > 1:
            _, n = self._frames.popleft()
            self._queued_events -= n
            dropped += n
        if self._queued_events > self._max_events:
            # A single frame larger than the whole queue: keep the client informed, not the frame.
            _, n = self._frames.popleft()
            self._queued_events -= n
            dropped += n
        self.dropped_unreported += dropped
        self._wakeup.set()
        return dropped

    async def next_messages(self) -> list[str]:
        """Wait for frames; return the pending messages (a drop notice first, if any)."""
        while not self._frames and not self.dropped_unreported and not self.closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        messages: list[str] = []
        if self.dropped_unreported:
            messages.append(_encoder.encode(_Dropped(self.dropped_unreported)).decode())
            self.dropped_unreported = 0
        while self._frames:
            frame, n = self._frames.popleft()
            self._queued_events -= n
            messages.append(frame)
        return messages

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()


class LiveHub:
    def __init__(
        self,
        *,
        frame_interval_seconds: float,
        client_queue_events: int,
        snapshot_events: int,
        heartbeat_seconds: float,
        max_clients: int,
        metrics: Metrics,
        views: Mapping[str, View] | None = None,
    ) -> None:
        self._views = dict(views or {})
        self._interval = frame_interval_seconds
        self._client_queue_events = client_queue_events
        self._heartbeat = heartbeat_seconds
        self._max_clients = max_clients
        self._metrics = metrics
        self._pending: list[Event] = []
        self._pending_incidents: dict[str, Incident] = {}
        self._open_incidents: dict[str, Incident] = {}  # for snapshots, bounded by SNAPSHOT_INCIDENTS
        self._recent: collections.deque[Event] = collections.deque(maxlen=max(snapshot_events, 1))
        self._snapshot_events = snapshot_events
        self._clients: set[LiveClient] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_sent = time.monotonic()
        metrics.gauge("honeyatlas_live_clients", lambda: [((), len(self._clients))])

    def seed(self, events: list[Event], incidents: list[Incident] | None = None) -> None:
        """Fill the snapshot buffers from the store at start: events oldest first, open incidents."""
        self._recent.extend(_live_view(e) for e in events)
        for incident in incidents or []:
            self._remember(_live_incident(incident))

    def _remember(self, incident: Incident) -> None:
        self._open_incidents.pop(incident.id, None)
        if incident.status is IncidentStatus.OPEN:
            self._open_incidents[incident.id] = incident  # most recently changed last
            while len(self._open_incidents) > SNAPSHOT_INCIDENTS:
                del self._open_incidents[next(iter(self._open_incidents))]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for client in list(self._clients):
            client.close()

    def publish(self, events: list[Event]) -> None:
        self._pending.extend(_live_view(e) for e in events)

    def publish_incidents(self, incidents: list[Incident]) -> None:
        """Incidents that opened, grew or closed; the next frame carries the latest of each."""
        for incident in incidents:
            self._pending_incidents[incident.id] = _live_incident(incident)

    def connect(self, view: str = FULL_VIEW) -> tuple[LiveClient, str] | None:
        """Register a client of `view` and return it with its snapshot message; None when full."""
        if view != FULL_VIEW and view not in self._views:
            raise ValueError(f"no live view named {view!r}")
        if len(self._clients) >= self._max_clients:
            self._metrics.inc("honeyatlas_requests_refused_total", source="live", reason="too_many_clients")
            return None
        client = LiveClient(self._client_queue_events, view)
        self._clients.add(client)
        recent = list(self._recent)[-self._snapshot_events :] if self._snapshot_events else []
        incidents = list(reversed(self._open_incidents.values()))
        redaction = self._views.get(view)
        if redaction is not None:
            recent = [redaction.event(e) for e in recent]
            incidents = [redaction.incident(i) for i in incidents]
        snapshot = _encoder.encode(
            _Snapshot(events=recent, server_time=datetime.now(UTC), incidents=incidents)
        ).decode()
        return client, snapshot

    def disconnect(self, client: LiveClient) -> None:
        self._clients.discard(client)
        client.close()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        """Encode what is pending into one frame per type and view, once, and offer them to
        every client of that view."""
        now = time.monotonic()
        events: list[Event] = []
        incidents: list[Incident] = []
        if self._pending:
            events, self._pending = self._pending, []
            # The snapshot holds only framed events: a client that connects now gets them in
            # its snapshot and everything later in frames, with no gap and no repeat.
            self._recent.extend(events)
        if self._pending_incidents:
            incidents = list(self._pending_incidents.values())
            self._pending_incidents = {}
            for incident in incidents:
                self._remember(incident)
        heartbeat = not events and not incidents
        if heartbeat and now - self._last_sent < self._heartbeat:
            return
        self._last_sent = now
        by_view: dict[str, list[LiveClient]] = {}
        for client in self._clients:
            by_view.setdefault(client.view, []).append(client)
        for view, clients in by_view.items():
            for frame, count in self._frames(self._views.get(view), events, incidents, heartbeat):
                for client in clients:
                    dropped = client.offer(frame, count)
                    if dropped:
                        self._metrics.inc(
                            "honeyatlas_events_dropped_total", amount=dropped, component="live", reason="slow_client"
                        )
                self._metrics.inc("honeyatlas_live_frames_sent_total", amount=len(clients))

    @staticmethod
    def _frames(redaction: View | None, events: list[Event], incidents: list[Incident],
                heartbeat: bool) -> list[tuple[str, int]]:
        if heartbeat:
            return [(_encoder.encode(_Heartbeat(server_time=datetime.now(UTC))).decode(), 0)]
        if redaction is not None:
            events = [redaction.event(e) for e in events]
            incidents = [redaction.incident(i) for i in incidents]
        frames: list[tuple[str, int]] = []
        if events:
            frames.append((_encoder.encode(_Events(events=events)).decode(), len(events)))
        if incidents:
            frames.append((_encoder.encode(_Incidents(incidents=incidents)).decode(), len(incidents)))
        return frames
