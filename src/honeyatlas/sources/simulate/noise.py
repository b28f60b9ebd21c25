"""Background noise: many sources, each too small to satisfy any detector's definition.

Sources arrive as a Poisson process; each is one actor (ssh, telnet, web or probe, see
`scenarios.NOISE_ACTORS`) with one to three sessions. By construction an actor:
- touches at most min(k, S) - 1 sensors (multi-sensor k, horizontal-scan S) and at most
  P - 1 ports of one sensor (vertical-scan P);
- never shares a campaign fingerprint: every credential list holds a pair drawn from tens
  of millions, every command sequence a command with 32 random bits, every download comes
  from a host of its own, and its SSH banners are the ones the detector ignores;
- drops only samples of its own (one sensor each).

Except the `bot` actor of the realistic background, which shares what unrelated bots
really share (`world.LIBRARY_BANNERS`, `DICTIONARY`, `MIRAI_LISTS`, `RECON_SETS`,
`PUBLIC_HOSTS`): its look-alike groups satisfy the plain campaign definition, and the
truth lists them as `lookalikes`, never as expectations.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator

from honeyatlas.sources.simulate import world
from honeyatlas.sources.simulate.scenarios import Scenario
from honeyatlas.sources.simulate.truth import Limits
from honeyatlas.sources.simulate.world import Addresses, Item

# Mean events of one session of each actor, to turn an event rate into an arrival rate.
MEAN_EVENTS = {"bot": 6.0, "ssh": 4.05, "telnet": 2.64, "web": 2.5, "probe": 1.15}
MEAN_SESSION_GAP_MS = 15 * 60 * 1000


class Noise:
    def __init__(self, *, scenario: Scenario, rate: float, sensors: int, limits: Limits, start_ms: int,
                 end_ms: int, seed: int) -> None:
        self._rng = random.Random(seed)
        self._sensors = sensors
        self._start_ms = start_ms
        self._end_ms = end_ms
        self._max_sensors = max(1, min(limits.k, limits.scan_sensors) - 1)
        self._max_ports = max(1, limits.scan_ports - 1)
        self._banners = world.stock_banners(list(limits.ignored_banners))
        # With a fingerprint of a single pair or command, even the first must be unique.
        self._common_first_pair = limits.credential_count > 1
        self._recon_first = limits.command_count > 1
        self._kinds = list(scenario.noise_mix)
        total = sum(scenario.noise_mix.values())
        self._cumulative = list(itertools.accumulate(scenario.noise_mix[kind] / total for kind in self._kinds))
        self._return = scenario.return_probability
        sessions_per_source = 1 + self._return + self._return / 3
        per_session = sum(w * MEAN_EVENTS[k] for k, w in scenario.noise_mix.items()) / total
        self._arrivals_per_ms = rate / per_session / sessions_per_source / 1000
        self.addresses = Addresses(world.NOISE_BLOCKS)
        self.events = 0

    def arrivals(self) -> Iterator[tuple[int, list[Item]]]:
        """(arrival time, the actor's records in time order), in arrival order."""
        t = float(self._start_ms)
        while True:
            t += self._rng.expovariate(self._arrivals_per_ms)
            if t >= self._end_ms:
                return
            items = self._actor(int(t))
            self.events += len(items)
            yield int(t), items

    def _actor(self, start_ms: int) -> list[Item]:
        rng = self._rng
        kind = self._kinds[min(bisect.bisect(self._cumulative, rng.random()), len(self._kinds) - 1)]
        source = self.addresses.next()
        sessions = 1 + (rng.random() < self._return) + (rng.random() < self._return / 3) if self._return else 1
        sensors = [int(rng.random() * self._sensors)]
        ports: dict[int, set[int]] = {}
        items: list[Item] = []
        t = start_ms
        for n in range(sessions):
            if n and len(sensors) < self._max_sensors and rng.random() < 0.5:
                sensors.append(int(rng.random() * self._sensors))  # may repeat one: still within the bound
            sensor = world.pick(rng, sensors) if n else sensors[0]
            made = self._session(kind, source, sensor, t, ports.setdefault(sensor, set()))
            if made[-1][0] >= self._end_ms:
                made = [item for item in made if item[0] < self._end_ms]
            items += made
            if n + 1 < sessions:
                t = made[-1][0] + 5000 + int(rng.expovariate(1 / MEAN_SESSION_GAP_MS)) if made else self._end_ms
                if t >= self._end_ms:
                    break
        return items

    def _port(self, used: set[int], wanted: int) -> int:
        """`wanted`, unless the source already used its share of this sensor's ports."""
        if wanted not in used and len(used) >= self._max_ports:
            return min(used)
        used.add(wanted)
        return wanted

    def _session(self, kind: str, source: str, sensor: int, t: int, used: set[int]) -> list[Item]:
        rng = self._rng
        if kind == "probe":
            port = world.pick(rng, world.PROBE_PORTS)
            items = world.session(rng, source=source, sensor=sensor, start_ms=t, port=self._port(used, port),
                                  protocol=None, steps=[world.probe()], with_id=False)
            if rng.random() < 0.15:
                second = world.pick(rng, world.PROBE_PORTS)
                items += world.session(rng, source=source, sensor=sensor, start_ms=t + world.between(rng, 20, 1500),
                                       port=self._port(used, second), protocol=None, steps=[world.probe()],
                                       with_id=False)
            return items
        if kind == "bot":
            return self._bot(source, sensor, t, used)
        if kind == "web":
            port = self._port(used, world.pick(rng, (80, 80, 8080, 8000, 443)))
            steps = [world.web(rng) for _ in range(world.between(rng, 1, 4))]
            return world.session(rng, source=source, sensor=sensor, start_ms=t, port=port, protocol="http", steps=steps)
        ssh = kind == "ssh"
        port = self._port(used, (22 if rng.random() < 0.8 else 2222) if ssh else (23 if rng.random() < 0.8 else 2323))
        steps = []
        if ssh:
            steps.append(world.banner(world.pick(rng, self._banners) if self._banners and rng.random() < 0.75 else None))
        attempts = min(1 + int(rng.expovariate(1 / 2.2)), 8) if ssh else world.between(rng, 1, 4)
        # The first pair may be a common one; every later pair is drawn from the huge dictionary,
        # so no two sessions share their first distinct pairs by chance.
        common = self._common_first_pair and rng.random() < 0.5
        pairs = [world.pick(rng, world.COMMON_PAIRS) if common else world.random_pair(rng)]
        pairs += [world.random_pair(rng) for _ in range(attempts - 1)]
        success = rng.random() < (0.12 if ssh else 0.05)
        steps += [world.login(user, password, success and i == len(pairs) - 1) for i, (user, password) in enumerate(pairs)]
        if success:
            # recon first, then a command with random bits: the first N commands are unique
            first = world.pick(rng, world.RECON) if self._recon_first else world.token_command(rng)
            commands = [first, *(world.token_command(rng) for _ in range(world.between(rng, 0, 4)))]
            steps += [world.command(c) for c in commands]
            if ssh and rng.random() < 0.3:
                host = f"{world.pick(rng, world.WORDS)}-{rng.getrandbits(40):010x}.example.net"
                steps.append(world.download(f"http://{host}/{world.pick(rng, world.WORDS)}", world.sha256(rng)))
        return world.session(rng, source=source, sensor=sensor, start_ms=t, port=port,
                             protocol="ssh" if ssh else "telnet", steps=steps)

    def _bot(self, source: str, sensor: int, t: int, used: set[int]) -> list[Item]:
        """An SSH bot as real honeynets see thousands: a library banner, dictionary credentials
        (a random subset in random order, or a Mirai list in its order), common recon, and a
        file from a public host or one of its own."""
        rng = self._rng
        port = self._port(used, 22 if rng.random() < 0.85 else 2222)
        steps = [world.banner(world.library_banner(rng))]
        if rng.random() < 0.15:
            pairs = world.pick(rng, world.MIRAI_LISTS)[: world.between(rng, 3, 5)]
        else:
            pairs = list(dict.fromkeys(world.dictionary_pair(rng) for _ in range(world.between(rng, 2, 8))))
        success = rng.random() < 0.15
        steps += [world.login(user, password, success and i == len(pairs) - 1) for i, (user, password) in enumerate(pairs)]
        if success:
            commands = [*world.pick(rng, world.RECON_SETS), *(world.token_command(rng) for _ in range(world.between(rng, 0, 2)))]
            steps += [world.command(c) for c in commands]
            if rng.random() < 0.35:
                host = (world.pick(rng, world.PUBLIC_HOSTS) if rng.random() < 0.6
                        else f"{world.pick(rng, world.WORDS)}-{rng.getrandbits(40):010x}.example.net")
                steps.append(world.download(f"https://{host}/{rng.getrandbits(32):08x}/{world.pick(rng, world.WORDS)}.sh",
                                            world.sha256(rng)))
        return world.session(rng, source=source, sensor=sensor, start_ms=t, port=port, protocol="ssh", steps=steps)
