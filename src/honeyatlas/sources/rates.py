"""Per-sensor event rates: a token bucket per sensor, so one loud or compromised sensor cannot
take the whole ingest capacity from the others.

Each sensor earns `rate_per_second` events a second up to `burst`. A batch is taken whole when
the bucket holds as many events (a batch larger than the burst: when the bucket is full, and
the bucket goes into debt, so a forwarder catching up sends one large batch, then waits);
otherwise it is refused with the time until the bucket holds enough (HTTP: 429 with that
Retry-After), and nothing is charged. The rate and burst come from
the sensor's own settings (`honeyatlas sensor set NAME --rate R --burst B`), else from
`ingest.sensor_events_per_second` and `ingest.sensor_burst_events`; a rate of 0 is no limit.
Memory: one bucket per sensor that sent recently, at most MAX_BUCKETS (the least recently
used forgotten first, which only ever refills it).
"""

from __future__ import annotations

import collections
import math
import time

from honeyatlas.enrichment.sensors import Sensor

MAX_BUCKETS = 100_000
DEFAULT_BURST_SECONDS = 10.0  # a burst of 0 means ten seconds' worth of the rate


class SensorRates:
    def __init__(self, *, events_per_second: float, burst_events: int) -> None:
        self._rate = events_per_second
        self._burst = burst_events
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def limits(self, sensor: Sensor) -> tuple[float, float]:
        """(events a second, burst) for this sensor; a rate of 0: no limit."""
        rate = sensor.rate_per_second if sensor.rate_per_second is not None else self._rate
        burst = sensor.burst if sensor.burst is not None else self._burst
        return rate, float(burst) if burst else rate * DEFAULT_BURST_SECONDS

    def take(self, sensor: Sensor, events: int, *, now: float | None = None) -> float:
        """Charge `events` to the sensor's bucket; 0 when allowed, else the seconds to wait
        (nothing charged)."""
        rate, burst = self.limits(sensor)
        if rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.pop(sensor.name, (burst, now))
        tokens = min(burst, tokens + (now - then) * rate)
        needed = min(events, burst)  # a batch larger than the burst needs a full bucket, then leaves a debt
        if tokens < needed:
            self._buckets[sensor.name] = (tokens, now)
            return (needed - tokens) / rate
        self._buckets[sensor.name] = (tokens - events, now)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return 0.0

    @staticmethod
    def retry_after(wait_seconds: float) -> int:
        return max(1, math.ceil(wait_seconds))
