"""The detectors split in two stages, for a cluster of workers (docs/scaling.md).

A worker consumes the event partitions of some source addresses. Its `SourceStage` runs the
detectors keyed by source (multi-sensor, scans) and finds what sources may share: the
campaign fingerprints a session completes, and payload hashes. Each such item goes to the
partition of its key (`route`), where another (or the same) worker's `KeyedStage` runs the
campaign and epidemic detectors on everything that carries that key, from every source.
So each detector's state for a key lives in exactly one worker, however many run.

Pure: the caller moves the items between workers (the bus's KEYED subjects).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from honeyatlas.config import CorrelationConfig
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.transforms.correlate import BY_KEY, BY_SOURCE, Correlator, Hit

# (keyed partition, event, the fingerprint it completed or None for its payload hash)
KeyedItem = tuple[int, Event, Hit | None]

# Replayed events whose keyed items a worker keeps for a batch that may come again: more than
# a worker holds unacknowledged (the cluster test's kill left 64 batches of ~100 events in
# each of 4 partitions).
REPLAYED_MAX = 50_000


class SourceStage:
    """`Correlate` for a worker's store sink: observes the source-keyed detectors and keeps
    the keyed items of what it observed in `pending` until the caller takes them."""

    def __init__(self, settings: CorrelationConfig, route: Callable[[str], int], share: float = 1.0) -> None:
        self.correlator = Correlator(settings, BY_SOURCE)
        self._fingerprints = self.correlator.fingerprinter(share)
        self._route = route
        self.pending: list[KeyedItem] = []
        # The keyed items of the latest replayed events, by event id: a worker killed between
        # its commit and passing the items on left them stored but never sent, and the replay
        # has moved the sessions past them, so when their batch comes again (unacknowledged)
        # its events pass these on instead (a repeat changes at most an event count).
        self.replayed: OrderedDict[str, list[KeyedItem]] = OrderedDict()
        self.replayed_evicted = 0

    @property
    def transitions(self) -> int:
        return self.correlator.transitions

    def observe(self, events: list[Event]) -> list[Incident]:
        fresh = events
        if self.replayed:
            fresh = []
            for event in events:
                again = self.replayed.pop(event.id, None)
                if again is None:
                    fresh.append(event)
                else:
                    self.pending.extend(again)
        self.pending.extend(self.keyed(fresh))
        return self.correlator.observe(events)

    def remember(self, events: Iterable[Event]) -> None:
        """Advance the sessions over replayed events (their items were passed on before, or
        are kept in `replayed` for a batch that comes again), the latest REPLAYED_MAX kept."""
        for event in events:
            items = self.keyed([event])
            if items:
                self.replayed[event.id] = items
                self.replayed.move_to_end(event.id)
                if len(self.replayed) > REPLAYED_MAX:
                    self.replayed.popitem(last=False)
                    self.replayed_evicted += 1

    def keyed(self, events: Iterable[Event]) -> list[KeyedItem]:
        """The items these events pass to the keyed stage (advances the session state)."""
        items: list[KeyedItem] = []
        for event in events:
            if event.sha256 is not None:
                items.append((self._route(event.sha256), event, None))
            if event.src_ip is None or event.src_ip in self.correlator.benign:
                continue  # as Correlator.observe: no source or a benign one, no campaign member
            for fingerprint, value, common, pair in self._fingerprints.fingerprints(event):
                items.append((self._route(value), event, Hit(str(fingerprint), value, common, pair)))
        return items

    def take(self) -> list[KeyedItem]:
        taken, self.pending = self.pending, []
        return taken


class KeyedStage:
    """The campaign and epidemic detectors of the keys routed to this worker."""

    def __init__(self, settings: CorrelationConfig) -> None:
        self.correlator = Correlator(settings, BY_KEY)

    def observe(self, items: Iterable[tuple[Event, Hit | None]]) -> list[Incident]:
        return self.correlator.observe_keyed(items)


class WorkerCorrelation:
    """Both stages of one worker, with what the restart rebuild needs (the same three
    methods as `Correlator`): the worker owns the source partitions `sources` and the keyed
    partitions `keys`; `partition(text)` maps an address or a key to its partition."""

    def __init__(self, settings: CorrelationConfig, *, partition: Callable[[str | None], int],
                 sources: set[int], keys: set[int], partitions: int) -> None:
        self._partition = partition
        self.sources = sources
        self.keys = keys
        # Which credentials and commands are common is learnt from the worker's own sources
        # (a third routing, by part, would make it exact; this keeps two): see docs/correlation.md.
        self.source = SourceStage(settings, route=partition, share=len(sources) / partitions)
        self.keyed = KeyedStage(settings)
        self._replay_fingerprints = self.source.correlator.fingerprinter()
        self._route = partition

    def replay_windows(self) -> tuple[float, float]:
        return self.source.correlator.replay_windows()

    def replay(self, events: list[Event]) -> dict[str, Incident]:
        """One chunk of stored events (every partition's, in arrival order): the source
        stage gets its own sources', the keyed stage the items of its keys from everyone."""
        mine = [e for e in events if self._partition(e.src_ip) in self.sources]
        self.source.remember(mine)
        produced = self.source.correlator.replay(mine)
        items: list[tuple[Event, Hit | None]] = []
        for event in events:
            if event.sha256 is not None and self._route(event.sha256) in self.keys:
                items.append((event, None))
            if event.src_ip is None or event.src_ip in self.source.correlator.benign:
                continue
            for fingerprint, value, common, pair in self._replay_fingerprints.fingerprints(event):
                if self._route(value) in self.keys:
                    items.append((event, Hit(str(fingerprint), value, common, pair)))
        produced.update({i.id: i for i in self.keyed.correlator.observe_keyed(items)})
        return produced

    def owns(self, incident: Incident) -> bool:
        """Whether this worker's detectors would hold `incident` (its key's partition)."""
        return self.owns_key(str(incident.kind), incident.key)

    def owns_key(self, kind: str, key: str) -> bool:
        by_key = kind in ("campaign", "epidemic")
        return self._route(key) in (self.keys if by_key else self.sources)

    def end_rebuild(self, produced: dict[str, Incident], stored_open: list[Incident]) -> list[Incident]:
        mine = [i for i in stored_open if self.owns(i)]
        found = self.source.correlator.end_rebuild(produced, [i for i in mine if not self.keyed.correlator.is_open(i.id)])
        return found
