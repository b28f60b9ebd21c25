"""simulate source: a labelled honeynet trace with its ground truth, to evaluate the detectors.

`honeyatlas simulate --out DIR [--scenario NAME] [--sensors N] [--rate EVENTS_PER_SECOND]
[--duration-seconds S] [--seed X] [--start ISO] [--config FILE]` writes three files:

- `trace.jsonl`: one JSON object per line, in event-time order (ties in a fixed order),
  `{"sensor": NAME, "record": RECORD}`. RECORD is in the `event` format (docs/formats/event.md):
  `ts` (ISO-8601 UTC, milliseconds), `kind`, `src_ip`, `src_port`, `dst_port`, `transport`
  and, as the kind has them, `protocol`, `session`, `action`, `username`, `password`,
  `outcome`, `command`, `url`, `sha256`, `user_agent`, `client_version`. Replay it by
  sending each record as sensor NAME: the `event` format takes the sensor from the
  authenticated sensor, never from the record.
- `sensors.json`: `{"sensors": [{"name", "honeypot", "lat", "lon", "label"}]}`, to register.
- `truth.json` (`truth.Truth`):
  - `format` ("honeyatlas-simulation-truth"), `version` (1), `scenario`, `description`,
    `seed`, `start`, `end`, `duration_seconds`, `rate_events_per_second`, `sensors`;
  - `thresholds`: the `[correlation]` options the truth follows (from --config, else defaults);
  - `counts`: `events`, `background_events`, `planted_events`, `background_sources`,
    `planted_sources`, `plants` (entities per plant), `expected` and `expected_none`
    (expectations and near misses per incident kind);
  - `entities`, one per planted entity: `id`, `plant` (`scenarios.PLANTS`), `sources`,
    `sensors` (in first-hit order), `first`, `last`, `events`, and
    - `expect`: the incidents it must open, each `{kind, key, qualifier, defining_hit}`:
      `kind` an incident kind; `key` the source address (multi_sensor and scans), the
      fingerprint value (campaign) or the SHA-256 (epidemic); `qualifier` the port
      (horizontal_scan), the sensor (vertical_scan), the fingerprint type (campaign), else
      ""; `defining_hit` the event time of the hit that reaches the threshold (the k-th
      distinct sensor, port or source within the window), which is the incident's `opened_at`;
    - `expect_none`: incidents it comes close to but must not open, `{kind, key, qualifier, reason}`.
  - `lookalikes` (realistic background only): fingerprint values unrelated bots share,
    `{qualifier, key, reason}`; they are no campaign.
  The background satisfies no definition (`noise`), except the realistic one's
  look-alikes, so an incident that no entity expects is a false positive. A horizontal
  scan over k sensors is also a multi-sensor attacker,
  and a botnet also an epidemic once its sample is at E sensors: `expect` lists both.

`--rate` is the background's average events per second of event time; planted entities
come on top. The same options, seed and thresholds give byte-identical files. What lives
here: options, validation, the merged stream and the writer; no module state.
Delivery: files written whole, not a live source.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from honeyatlas.config import CorrelationConfig
from honeyatlas.sources.simulate.noise import Noise
from honeyatlas.sources.simulate.plants import Planner
from honeyatlas.sources.simulate.scenarios import PLANTS, SCENARIOS, Scenario
from honeyatlas.sources.simulate.truth import Counts, Entity, Limits, Truth, benign_test, lookalikes
from honeyatlas.sources.simulate.world import Item, SensorSpec, SimulationError, sensor_specs

__all__ = [
    "DEFAULT_START", "PLANTS", "SCENARIOS", "Plan", "Scenario", "SimulationError", "SimulationOptions",
    "SimulationProgress", "Trace", "Truth", "plan_simulation", "write_simulation",
]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
MIN_DURATION_SECONDS = 600.0
MAX_DURATION_SECONDS = 366 * 86400.0
MAX_SENSORS = 10_000
MAX_RATE = 100_000.0
MAX_EVENTS = 500_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimulationOptions(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str = "baseline"
    sensors: int | None = None  # None: the scenario's
    rate_events_per_second: float | None = None
    duration_seconds: float | None = None
    seed: int = 1
    start: datetime = DEFAULT_START


class SimulationProgress(msgspec.Struct, frozen=True):
    events: int
    share: float  # of the trace's event time written
    seconds: float


class Plan:
    """Everything fixed before the first record: sensors, planted entities and their truth."""

    def __init__(self, *, scenario: Scenario, options: SimulationOptions, correlation: CorrelationConfig,
                 sensors: list[SensorSpec], entities: list[Entity], planted: list[Item], start_ms: int,
                 end_ms: int, noise_seed: int) -> None:
        self.scenario = scenario  # with the options' sensors, rate and duration
        self.options = options
        self.correlation = correlation
        self.limits = Limits.of(correlation)
        self.sensors = sensors
        self.entities = entities
        self.planted = planted  # every planted record, in event-time order
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.noise_seed = noise_seed


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SimulationError(message)


def plan_simulation(options: SimulationOptions, correlation: CorrelationConfig) -> Plan:
    """Validate the options (one clear error each) and place every planted entity."""
    base = SCENARIOS.get(options.scenario)
    _check(base is not None, f"unknown scenario {options.scenario!r}; pick one of {', '.join(SCENARIOS)}")
    assert base is not None
    limits = Limits.of(correlation)
    sensors = base.sensors if options.sensors is None else options.sensors
    rate = base.rate_events_per_second if options.rate_events_per_second is None else options.rate_events_per_second
    duration = base.duration_seconds if options.duration_seconds is None else options.duration_seconds
    need = max(limits.k, limits.scan_sensors, limits.epidemic_sensors)
    _check(need <= sensors <= MAX_SENSORS, f"--sensors must be between {need} and {MAX_SENSORS} (the correlation "
           f"thresholds need {need} sensors for a scan, an attacker or an epidemic)")
    _check(0 < rate <= MAX_RATE, f"--rate must be more than 0 and at most {MAX_RATE:,.0f} events per second")
    _check(MIN_DURATION_SECONDS <= duration <= MAX_DURATION_SECONDS,
           f"--duration-seconds must be between {MIN_DURATION_SECONDS:,.0f} and {MAX_DURATION_SECONDS:,.0f} (366 days)")
    _check(rate * duration <= MAX_EVENTS, f"--rate {rate:g} for --duration-seconds {duration:,.0f} makes "
           f"{rate * duration:,.0f} events; keep it under {MAX_EVENTS:,}")
    start = options.start if options.start.tzinfo is not None else options.start.replace(tzinfo=UTC)
    _check(datetime(1971, 1, 1, tzinfo=UTC) <= start <= datetime(2999, 1, 1, tzinfo=UTC),
           "--start must lie between 1971 and 2999")
    try:
        benign_test(limits)
    except ValueError as exc:
        raise SimulationError(f"correlation.benign_networks in --config: {exc}") from exc
    _check(correlation.multi_sensor_group_by == "ip", "simulate writes truth for correlation.multi_sensor_group_by "
           "= \"ip\" only; leave that option at its default in --config")
    scenario = msgspec.structs.replace(base, sensors=sensors, rate_events_per_second=rate, duration_seconds=duration)
    specs = sensor_specs(sensors)
    start_ms = (start - _EPOCH) // timedelta(milliseconds=1)
    duration_ms = round(duration * 1000)
    master = random.Random(options.seed)
    planner = Planner(scenario=scenario, limits=limits, sensor_names=[s.name for s in specs], start_ms=start_ms,
                      duration_ms=duration_ms, seed=master.getrandbits(64))
    entities: list[Entity] = []
    planted: list[Item] = []
    for plant in PLANTS:
        for n in range(scenario.plants.get(plant, 0)):
            made = planner.plant(plant, f"{plant}-{n + 1:03d}")
            if made is not None:
                entities.append(made[0])
                planted += made[1]
    planted.sort(key=lambda item: item[0])
    return Plan(scenario=scenario, options=options, correlation=correlation, sensors=specs, entities=entities,
                planted=planted, start_ms=start_ms, end_ms=start_ms + duration_ms, noise_seed=master.getrandbits(64))


class Trace:
    """The whole trace as a stream: planted records merged with the background, in event-time
    order. Iterating again gives the same records; the counts describe the last iteration."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._noise: Noise | None = None

    @property
    def background_events(self) -> int:
        """Background records so far (counted when their source arrives)."""
        return self._noise.events if self._noise is not None else 0

    @property
    def background_sources(self) -> int:
        return self._noise.addresses.allocated if self._noise is not None else 0

    def __iter__(self) -> Iterator[Item]:
        plan = self._plan
        noise = self._noise = Noise(scenario=plan.scenario, rate=plan.scenario.rate_events_per_second,
                                    sensors=len(plan.sensors), limits=plan.limits, start_ms=plan.start_ms,
                                    end_ms=plan.end_ms, seed=plan.noise_seed)
        order = itertools.count()  # ties in event time: whatever was queued first goes first
        heap: list[tuple[int, int, Item, Iterator[Item]]] = []

        def queue(items: Iterator[Item]) -> None:
            item = next(items, None)
            if item is not None:
                heapq.heappush(heap, (item[0], next(order), item, items))

        queue(iter(plan.planted))
        arrivals = noise.arrivals()
        arrival = next(arrivals, None)
        while heap or arrival is not None:
            if arrival is not None and (not heap or arrival[0] < heap[0][0]):
                queue(iter(arrival[1]))
                arrival = next(arrivals, None)
                continue
            _, _, item, rest = heapq.heappop(heap)
            yield item
            queue(rest)


def write_simulation(plan: Plan, out: Path, on_progress: Callable[[SimulationProgress], None] | None = None,
                     progress_every: int = 50_000) -> Truth:
    """Write trace.jsonl, sensors.json and truth.json into `out` (created if missing)."""
    if out.exists() and not out.is_dir():
        raise SimulationError(f"--out {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sensors.json").write_bytes(_pretty({"sensors": plan.sensors}))
    names = [s.name.encode() for s in plan.sensors]
    encode = msgspec.json.Encoder().encode
    trace = Trace(plan)
    began = time.monotonic()
    span = max(1, plan.end_ms - plan.start_ms)
    events = 0
    second, prefix = -1, ""
    with (out / "trace.jsonl").open("wb") as f:
        lines: list[bytes] = []
        for ts, sensor, record in trace:
            if ts // 1000 != second:
                second = ts // 1000
                prefix = time.strftime('{"ts":"%Y-%m-%dT%H:%M:%S', time.gmtime(second))
            body = encode(record)  # the record with "ts" first, without copying the dict
            lines.append(b'{"sensor":"%s","record":%s.%03dZ",%s}\n' % (names[sensor], prefix.encode(), ts % 1000, body[1:]))
            events += 1
            if len(lines) >= 10_000:
                f.write(b"".join(lines))
                lines.clear()
            if on_progress is not None and events % progress_every == 0:
                on_progress(SimulationProgress(events, (ts - plan.start_ms) / span, time.monotonic() - began))
        f.write(b"".join(lines))
    truth = _truth(plan, trace, events)
    (out / "truth.json").write_bytes(_pretty(truth))
    if on_progress is not None:
        on_progress(SimulationProgress(events, 1.0, time.monotonic() - began))
    return truth


def _truth(plan: Plan, trace: Trace, events: int) -> Truth:
    expected: Counter[str] = Counter()
    expected_none: Counter[str] = Counter()
    for entity in plan.entities:
        expected.update(str(e.kind) for e in entity.expect)
        expected_none.update(str(n.kind) for n in entity.expect_none)
    counts = Counts(
        events=events, background_events=trace.background_events, planted_events=len(plan.planted),
        background_sources=trace.background_sources, planted_sources=sum(len(e.sources) for e in plan.entities),
        plants=dict(Counter(e.plant for e in plan.entities)), expected=dict(sorted(expected.items())),
        expected_none=dict(sorted(expected_none.items())),
    )
    s = plan.scenario
    return Truth(
        scenario=s.name, description=s.description, seed=plan.options.seed,
        start=_EPOCH + timedelta(milliseconds=plan.start_ms), end=_EPOCH + timedelta(milliseconds=plan.end_ms),
        duration_seconds=s.duration_seconds, rate_events_per_second=s.rate_events_per_second, sensors=s.sensors,
        thresholds=msgspec.structs.asdict(plan.correlation), counts=counts, entities=plan.entities,
        lookalikes=lookalikes(plan.limits) if "bot" in s.noise_mix else [],
    )


def _pretty(value: object) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"
