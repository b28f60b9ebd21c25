"""The load itself: cowrie records from the lab sample, with public sources and markers.

The sample (tests/data/samples/cowrie.json) is a real cowrie session log with loopback
sources; every record gets a source from a fixed pool of public addresses, so GeoIP does
real lookups (with the cache hit rate a pool of that size gives). A marked record carries
`session = <tag><seq>.<scheduled send time in ns>`: the WebSocket receiver finds it in the
live frame and subtracts the send time from its own receive time (same CLOCK_MONOTONIC).
The event's `ingest_ts` is set by the server and cannot serve.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO

SAMPLES = REPO / "tests" / "data" / "samples"
BATCH = 100
_PLACEHOLDER = b"@@MARK@@"


def public_sources(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast:
            out.append(str(address))
    return out


def sample_records(name: str = "cowrie") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / f"{name}.json").read_text().splitlines() if line.strip()]


def _templates(pool_size: int, seed: int) -> list[bytes]:
    """One NDJSON line per sample record, session replaced by a placeholder, sources public."""
    records = sample_records()
    sources = public_sources(pool_size, seed)
    rng = random.Random(seed)
    lines = []
    for record in records:
        record = dict(record, src_ip=rng.choice(sources), session=_PLACEHOLDER.decode())
        lines.append(json.dumps(record, separators=(",", ":")).encode())
    return lines


class Batches:
    """Bodies of BATCH cowrie records (NDJSON), unmarked or marked with a send time."""

    def __init__(self, pool_size: int = 5000, seed: int = 7) -> None:
        self._lines = _templates(pool_size, seed)
        self._rng = random.Random(seed)

    def _pick(self) -> list[bytes]:
        return [self._rng.choice(self._lines) for _ in range(BATCH)]

    def prebuilt(self, count: int, tag: str) -> list[bytes]:
        """`count` distinct bodies for saturation runs (markers without a time)."""
        bodies = []
        for b in range(count):
            lines = [line.replace(_PLACEHOLDER, f"{tag}{b}-{i}".encode()) for i, line in enumerate(self._pick())]
            bodies.append(b"\n".join(lines) + b"\n")
        return bodies

    def marked(self, tag: str, first_seq: int, send_ns: int) -> bytes:
        """One body whose records carry `<tag><seq>.<send_ns>`, seq from `first_seq`."""
        lines = [
            line.replace(_PLACEHOLDER, f"{tag}{first_seq + i}.{send_ns}".encode())
            for i, line in enumerate(self._pick())
        ]
        return b"\n".join(lines) + b"\n"


def marker_pattern(tag: str) -> re.Pattern[bytes]:
    """Finds (seq, send_ns) of every marked event of `tag` in a live frame."""
    return re.compile(rb'"session":"' + re.escape(tag.encode()) + rb'(\d+)\.(\d+)"')


def marker_count_needle(tag: str) -> bytes:
    return b'"session":"' + tag.encode()


# --------------------------------------------------------------------------- in-process


def load_adapters_one_by_one() -> tuple[dict[str, Any], dict[str, str]]:
    """Every registered adapter that loads, and the reason for each one that does not.

    Other work may register an entry point before its module exists; one broken format must
    not stop the whole benchmark run, so each is loaded alone.
    """
    from honeyatlas.adapters import ENTRY_POINT_GROUP, Adapter

    found: dict[str, Any] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            adapter = ep.load()
        except Exception as exc:
            broken[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if isinstance(adapter, Adapter):
            found[ep.name] = adapter
        else:
            broken[ep.name] = "not an Adapter"
    return found, broken


def record_context(raw: str = "") -> Any:
    from honeyatlas.adapters import RecordContext

    return RecordContext(sensor="bench", honeypot="cowrie", received=datetime.now(UTC), timezone=UTC, raw=raw)


def bundled_geoip(cache_size: int = 100_000) -> Any:
    """The GeoIP lookups `serve` uses with no city database: the bundled country and ASN
    tables and centroids. Opened; the caller closes it."""
    from honeyatlas.enrichment.geoip import BUNDLED_ASN_DB, BUNDLED_CENTROIDS, BUNDLED_COUNTRY_DB, GeoIP

    geoip = GeoIP(city_path=None, country_path=BUNDLED_COUNTRY_DB, asn_path=BUNDLED_ASN_DB,
                  centroids_path=BUNDLED_CENTROIDS, cache_size=cache_size)
    geoip.open()
    return geoip


def geolocated_events(count: int) -> list[Any]:
    """`count` Events as the pipeline would store them: cowrie adapter, then geolocate."""
    from honeyatlas.enrichment.sensors import Sensor
    from honeyatlas.transforms.geolocate import Geolocator

    adapters, _ = load_adapters_one_by_one()
    cowrie = adapters["cowrie"]
    geoip = bundled_geoip()
    try:
        geolocator = Geolocator(geoip, cache_size=100_000)
        sensor = Sensor(name="bench", honeypot="cowrie", lat=50.11, lon=8.68)
        lines = Batches().prebuilt(count // BATCH + 1, "ev")
        events = []
        for body in lines:
            for line in body.splitlines():
                for event in cowrie.adapt(json.loads(line), record_context(line.decode())):
                    events.append(geolocator.apply(event, sensor))
        return events[:count]
    finally:
        geoip.close()


def live_event_dicts(count: int) -> list[dict[str, Any]]:
    """Events as a live frame carries them (no `raw`), as plain dicts for the naive server."""
    import msgspec

    return [msgspec.to_builtins(msgspec.structs.replace(e, raw=None)) for e in geolocated_events(count)]


def sample_path(name: str) -> Path | None:
    """The sample file of a format, if tests/data/samples has one (any extension)."""
    matches = sorted(p for p in SAMPLES.glob(f"{name}.*") if p.is_file())
    return matches[0] if matches else None


def save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
