"""Ground truth: which incidents a planted entity must (and must not) open, and when.

The truth is computed from each entity's own records with the definitions of
docs/correlation.md, written here independently of the detectors: a threshold of distinct
members whose latest hit lies within the window, reached at the event time of the defining
hit. It is exact for the trace because every key an entity uses (its source addresses, its
fingerprints, its samples) belongs to it alone. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime

import msgspec

from honeyatlas.config import CorrelationConfig
from honeyatlas.incident import Fingerprint, IncidentKind, download_key, shared_hosts
from honeyatlas.sources.simulate import world
from honeyatlas.sources.simulate.world import Item


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The correlation thresholds the truth follows, windows in milliseconds."""

    k: int  # multi_sensor_min_sensors
    window_ms: int
    scan_ports: int
    scan_sensors: int
    scan_window_ms: int
    campaign_sources: int
    campaign_window_ms: int
    credential_count: int
    command_count: int
    ignored_banners: tuple[str, ...]
    epidemic_sensors: int
    epidemic_window_ms: int
    benign_networks: tuple[str, ...] = ()  # sources there open no multi-sensor or campaign incident
    shared_hosts: tuple[str, ...] = ()  # public file hosts: keyed by host and owner path (incident.download_key)

    @classmethod
    def of(cls, c: CorrelationConfig) -> Limits:
        return cls(
            k=c.multi_sensor_min_sensors, window_ms=round(c.multi_sensor_window_seconds * 1000),
            scan_ports=c.scan_min_ports, scan_sensors=c.scan_min_sensors,
            scan_window_ms=round(c.scan_window_seconds * 1000), campaign_sources=c.campaign_min_sources,
            campaign_window_ms=round(c.campaign_window_seconds * 1000),
            credential_count=c.campaign_credential_count, command_count=c.campaign_command_count,
            ignored_banners=tuple(c.campaign_ignore_client_versions), epidemic_sensors=c.epidemic_min_sensors,
            epidemic_window_ms=round(c.epidemic_window_seconds * 1000), benign_networks=tuple(c.benign_networks),
            shared_hosts=shared_hosts(c.campaign_shared_hosts),
        )


def benign_test(limits: Limits) -> Callable[[str], bool]:
    """Whether a source lies in `benign_networks` (parsed once per call of this)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in limits.benign_networks]

    def benign(source: str) -> bool:
        if not networks:
            return False
        address = ipaddress.ip_address(source)
        return any(address.version == net.version and address in net for net in networks)

    return benign


class Expectation(msgspec.Struct, frozen=True, kw_only=True):
    """An incident the entity must open."""

    kind: IncidentKind
    key: str  # source address, fingerprint value or SHA-256
    qualifier: str = ""  # horizontal scan: the port; vertical scan: the sensor; campaign: the fingerprint
    defining_hit: datetime  # event time of the k-th distinct sensor, port or source


class NearMiss(msgspec.Struct, frozen=True, kw_only=True):
    """An incident the entity comes close to but must not open."""

    kind: IncidentKind
    key: str
    qualifier: str = ""
    reason: str


class Entity(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    plant: str  # a key of scenarios.PLANTS
    sources: list[str]
    sensors: list[str]  # in the order first hit
    first: datetime
    last: datetime
    events: int
    expect: list[Expectation]
    expect_none: list[NearMiss]


class Lookalike(msgspec.Struct, frozen=True, kw_only=True):
    """A group of unrelated background sources that share a fingerprint value without being
    coordinated (the realistic background): a campaign on it is a false positive."""

    qualifier: str  # the fingerprint type
    key: str  # the fingerprint value; "" for a family of values the reason describes
    reason: str


def lookalikes(limits: Limits) -> list[Lookalike]:
    """What the `bot` background actors share (noise.Noise._bot draws from these lists)."""
    found = [Lookalike(qualifier=str(Fingerprint.CLIENT_VERSION), key=banner, reason="client library banner")
             for banner, _ in world.LIBRARY_BANNERS if not banner.startswith(limits.ignored_banners)]
    for pairs in world.MIRAI_LISTS:
        if len(pairs) >= limits.credential_count:
            key = ", ".join(sorted(f"{u}/{p}" for u, p in pairs[: limits.credential_count]))
            found.append(Lookalike(qualifier=str(Fingerprint.CREDENTIALS), key=key,
                                   reason="Mirai-family list, tried in its order by unrelated bots"))
    found.append(Lookalike(qualifier=str(Fingerprint.CREDENTIALS), key="",
                           reason=f"any {limits.credential_count} pairs of the common dictionary: bots try random subsets"))
    for commands in world.RECON_SETS:
        if len(commands) >= limits.command_count:
            found.append(Lookalike(qualifier=str(Fingerprint.COMMANDS), key=" ; ".join(commands[: limits.command_count]),
                                   reason="common recon commands"))
    found += [Lookalike(qualifier=str(Fingerprint.DOWNLOAD_HOST), key=host, reason="public host used by unrelated bots")
              for host in world.PUBLIC_HOSTS]
    return found


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    events: int = 0
    background_events: int = 0
    planted_events: int = 0
    background_sources: int = 0
    planted_sources: int = 0
    plants: dict[str, int] = {}
    expected: dict[str, int] = {}  # incident kind -> expectations
    expected_none: dict[str, int] = {}  # incident kind -> near misses


class Truth(msgspec.Struct, frozen=True, kw_only=True):
    format: str = "honeyatlas-simulation-truth"
    version: int = 1
    scenario: str
    description: str
    seed: int
    start: datetime
    end: datetime
    duration_seconds: float
    rate_events_per_second: float
    sensors: int
    thresholds: dict[str, object]  # the correlation options the truth follows
    counts: Counts
    entities: list[Entity]
    lookalikes: list[Lookalike] = []  # realistic background: shared values that are no campaign


# --------------------------------------------------------------------------- the definitions


def first_reach(hits: Iterable[tuple[int, Hashable]], threshold: int, window_ms: int) -> int | None:
    """Event time at which `threshold` distinct members have their latest hit within the
    window ending at that hit; None if never. `hits` are (time, member) in trace order."""
    latest: dict[Hashable, int] = {}
    for ts, member in hits:
        latest[member] = ts
        horizon = ts - window_ms
        if sum(1 for seen in latest.values() if seen >= horizon) >= threshold:
            return ts
    return None


def _collapse(text: str) -> str:
    return " ".join(text.split())


# Keys that open a campaign only with a second key their sources share (campaigns.WEAK).
WEAK = (Fingerprint.CLIENT_VERSION, Fingerprint.COMMANDS)


def completions(items: list[Item], limits: Limits) -> list[tuple[int, str, Fingerprint, str]]:
    """(time, source, fingerprint, value) of every fingerprint the records complete, in
    trace order, per the campaign definitions."""
    credentials: dict[tuple[int, str], list[str]] = {}
    commands: dict[tuple[int, str], list[str]] = {}
    found: list[tuple[int, str, Fingerprint, str]] = []
    benign = benign_test(limits)
    for ts, sensor, record in items:
        source = record["src_ip"]
        if benign(source):
            continue
        session = (sensor, record.get("session") or f"src:{source}")
        kind = record["kind"]
        if kind == "login_attempt" and ("username" in record or "password" in record):
            pairs = credentials.setdefault(session, [])
            pair = f"{_collapse(record.get('username', ''))}/{_collapse(record.get('password', ''))}"
            if len(pairs) < limits.credential_count and pair not in pairs:
                pairs.append(pair)
                if len(pairs) == limits.credential_count:
                    found.append((ts, source, Fingerprint.CREDENTIALS, ", ".join(sorted(pairs))))
        elif kind == "command" and record.get("command"):
            typed = commands.setdefault(session, [])
            if len(typed) < limits.command_count:
                typed.append(_collapse(record["command"]))
                if len(typed) == limits.command_count:
                    found.append((ts, source, Fingerprint.COMMANDS, " ; ".join(typed)))
        elif kind == "file_download" and record.get("url"):
            host = download_key(record["url"], limits.shared_hosts)
            if host:
                found.append((ts, source, Fingerprint.DOWNLOAD_HOST, host))
        version = record.get("client_version")
        if version and not version.startswith(limits.ignored_banners):
            found.append((ts, source, Fingerprint.CLIENT_VERSION, version))
    return found


def fingerprint_hits(items: list[Item], limits: Limits) -> dict[tuple[Fingerprint, str], list[tuple[int, str]]]:
    """(fingerprint, value) -> [(time, source)] of the events that show it, per the campaign definitions."""
    found: dict[tuple[Fingerprint, str], list[tuple[int, str]]] = {}
    for ts, source, fingerprint, value in completions(items, limits):
        found.setdefault((fingerprint, value), []).append((ts, source))
    return found


def pair_hits(items: list[Item], limits: Limits) -> dict[tuple[Fingerprint, str, str], list[tuple[int, str]]]:
    """(fingerprint, value, second key) -> [(time, source)]: a source that completed a key
    while it had completed another within the window shows both, at the later completion."""
    recent: dict[str, dict[tuple[Fingerprint, str], int]] = {}
    found: dict[tuple[Fingerprint, str, str], list[tuple[int, str]]] = {}
    for ts, source, fingerprint, value in completions(items, limits):
        keys = {key: seen for key, seen in recent.get(source, {}).items() if seen >= ts - limits.campaign_window_ms}
        for other, other_value in keys:
            if (other, other_value) != (fingerprint, value):
                found.setdefault((fingerprint, value, f"{other}:{other_value}"), []).append((ts, source))
                found.setdefault((other, other_value, f"{fingerprint}:{value}"), []).append((ts, source))
        keys[(fingerprint, value)] = ts
        recent[source] = keys
    return found


def campaign_reach(items: list[Item], limits: Limits) -> dict[tuple[Fingerprint, str], int]:
    """When each campaign opens: C sources within the window show a strong key, or a weak
    key together with one same second key (the earliest such second key)."""
    found: dict[tuple[Fingerprint, str], int] = {}
    for (fingerprint, value), hits in fingerprint_hits(items, limits).items():
        if fingerprint not in WEAK:
            hit = first_reach(hits, limits.campaign_sources, limits.campaign_window_ms)
            if hit is not None:
                found[(fingerprint, value)] = hit
    for (fingerprint, value, _), hits in pair_hits(items, limits).items():
        if fingerprint in WEAK:
            hit = first_reach(hits, limits.campaign_sources, limits.campaign_window_ms)
            if hit is not None and hit < found.get((fingerprint, value), hit + 1):
                found[(fingerprint, value)] = hit
    return found


def expectations(items: list[Item], limits: Limits, sensor_names: list[str]) -> list[tuple[IncidentKind, str, str, int]]:
    """Every incident these records open on their own: (kind, key, qualifier, defining-hit time)."""
    items = sorted(items, key=lambda item: item[0])  # stable: ties keep trace order
    found: list[tuple[IncidentKind, str, str, int]] = []
    benign = benign_test(limits)
    by_source: dict[str, list[Item]] = {}
    for item in items:
        by_source.setdefault(item[2]["src_ip"], []).append(item)
    for source, own in by_source.items():
        hit = first_reach(((ts, sensor) for ts, sensor, _ in own), limits.k, limits.window_ms)
        if hit is not None and not benign(source):
            found.append((IncidentKind.MULTI_SENSOR, source, "", hit))
        probes = [(ts, sensor, r["dst_port"]) for ts, sensor, r in own if r.get("dst_port") is not None]
        for port in sorted({p for _, _, p in probes}):
            hit = first_reach(((ts, s) for ts, s, p in probes if p == port), limits.scan_sensors, limits.scan_window_ms)
            if hit is not None:
                found.append((IncidentKind.HORIZONTAL_SCAN, source, str(port), hit))
        for sensor in sorted({s for _, s, _ in probes}):
            hit = first_reach(((ts, p) for ts, s, p in probes if s == sensor), limits.scan_ports, limits.scan_window_ms)
            if hit is not None:
                found.append((IncidentKind.VERTICAL_SCAN, source, sensor_names[sensor], hit))
    for (fingerprint, value), hit in campaign_reach(items, limits).items():
        found.append((IncidentKind.CAMPAIGN, value, str(fingerprint), hit))
    samples: dict[str, list[tuple[int, int]]] = {}
    for ts, sensor, record in items:
        if record.get("sha256"):
            samples.setdefault(record["sha256"], []).append((ts, sensor))
    for digest, sightings in samples.items():
        hit = first_reach(sightings, limits.epidemic_sensors, limits.epidemic_window_ms)
        if hit is not None:
            found.append((IncidentKind.EPIDEMIC, digest, "", hit))
    return found
