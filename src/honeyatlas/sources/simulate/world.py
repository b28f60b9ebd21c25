"""What every simulated actor draws from: addresses, sensors, dictionaries, session records.

An `Item` is one trace entry: (event time in epoch milliseconds, sensor index, record
without `ts`); the writer adds `ts`. Records use the `event` format's field names
(docs/formats/event.md). Nothing here keeps state between calls except the `Addresses`
allocator that its owner creates.
"""

from __future__ import annotations

import random
import time
from typing import Any

import msgspec

from honeyatlas.errors import HoneyatlasError

Item = tuple[int, int, dict[str, Any]]


class SimulationError(HoneyatlasError):
    """An option the simulation cannot honour; the message says which and what to do."""

# First octets of public IPv4 /8s (RIR-allocated unicast: no private, CGNAT, loopback,
# multicast or reserved space). Noise and planted sources come from disjoint lists, so no
# background source can ever share an address with a planted one.
NOISE_BLOCKS = (
    1, 2, 5, 14, 27, 31, 36, 37, 39, 41, 42, 46, 49, 58, 59, 60, 61, 77, 78, 79, 80, 81, 82, 83, 84,
    85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117,
    118, 119, 120, 121, 122, 123, 124, 125, 175, 176, 177, 178, 179, 180, 181, 182, 183, 186, 187,
    188, 189, 190, 200, 201, 202, 203, 210, 211, 212, 213, 217, 218, 219, 220, 221, 222,
)
PLANT_BLOCKS = (45, 103, 185, 193, 194, 195)
# The simulated research scanners' network (outside both lists): a trace's truth treats
# them as benign when --config lists it in correlation.benign_networks.
RESEARCH_NETWORK = "162.142.125.0/24"
_SPREAD = 2654435761  # a prime: multiplying by it modulo blocks x 2^24 permutes the addresses


class Addresses:
    """Distinct IPv4 addresses from a list of /8 blocks, in a fixed scattered order."""

    def __init__(self, blocks: tuple[int, ...]) -> None:
        self._blocks = blocks
        self.allocated = 0

    def next(self) -> str:
        count = len(self._blocks)
        scattered = (self.allocated * _SPREAD + 0x2A5F3) % (count << 24)
        self.allocated += 1
        first, rest = self._blocks[scattered % count], scattered // count
        return f"{first}.{rest >> 16}.{(rest >> 8) & 0xFF}.{rest & 0xFF}"


class SensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    honeypot: str
    lat: float
    lon: float
    label: str


CITIES = [
    ("Frankfurt", 50.11, 8.68), ("Ashburn", 38.95, -77.45), ("Singapore", 1.35, 103.82),
    ("Sao Paulo", -23.55, -46.63), ("Sydney", -33.87, 151.21), ("Johannesburg", -26.2, 28.05),
    ("Tokyo", 35.68, 139.69), ("Amsterdam", 52.37, 4.9), ("London", 51.51, -0.13), ("Paris", 48.86, 2.35),
    ("Stockholm", 59.33, 18.07), ("Warsaw", 52.23, 21.01), ("Mumbai", 19.08, 72.88), ("Seoul", 37.57, 126.98),
    ("Hong Kong", 22.32, 114.17), ("Toronto", 43.65, -79.38), ("Dallas", 32.78, -96.8),
    ("San Jose", 37.34, -121.89), ("Mexico City", 19.43, -99.13), ("Santiago", -33.45, -70.67),
    ("Lagos", 6.52, 3.38), ("Nairobi", -1.29, 36.82), ("Cairo", 30.04, 31.24), ("Dubai", 25.2, 55.27),
    ("Istanbul", 41.01, 28.98), ("Madrid", 40.42, -3.7), ("Milan", 45.46, 9.19), ("Helsinki", 60.17, 24.94),
    ("Jakarta", -6.21, 106.85), ("Auckland", -36.85, 174.76),
]


def sensor_specs(count: int) -> list[SensorSpec]:
    width = max(2, len(str(count)))
    specs = []
    for i in range(count):
        city, lat, lon = CITIES[i % len(CITIES)]
        shift = (i // len(CITIES)) * 0.25  # a second sensor in a city sits a little apart
        specs.append(SensorSpec(name=f"sim-{i + 1:0{width}d}", honeypot="tpot", lat=round(lat + shift, 4),
                                lon=round(lon + shift, 4), label=f"Simulated sensor, {city}"))
    return specs


def iso_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


# --------------------------------------------------------------------------- dictionaries

USERS = ["admin", "user", "test", "ubuntu", "oracle", "postgres", "git", "pi", "support", "guest", "ftpuser",
         "nagios", "deploy", "hadoop", "minecraft", "teamspeak", "ubnt", "mysql", "www", "backup"]
COMMON_PAIRS = [
    ("root", "root"), ("root", "123456"), ("admin", "admin"), ("root", "password"), ("ubuntu", "ubuntu"),
    ("pi", "raspberry"), ("root", "admin"), ("user", "user"), ("root", "1qaz2wsx"), ("test", "test"),
    ("support", "support"), ("root", "toor"), ("admin", "1234"), ("guest", "guest"), ("root", "12345678"),
]
WORDS = [
    "alpha", "amber", "apple", "atlas", "autumn", "bamboo", "banana", "basil", "beacon", "birch", "blue",
    "breeze", "canyon", "carbon", "cedar", "cobalt", "comet", "coral", "crystal", "delta", "desert", "dragon",
    "eagle", "echo", "ember", "falcon", "forest", "galaxy", "garnet", "ginger", "glacier", "harbor", "hazel",
    "indigo", "iris", "jade", "jasmine", "kernel", "lemon", "lotus", "maple", "marble", "meadow", "mercury",
    "meteor", "mint", "nebula", "oasis", "olive", "onyx", "orbit", "pepper", "phoenix", "pixel", "planet",
    "quartz", "raven", "river", "saffron", "shadow", "silver", "spruce", "storm", "summer", "thunder", "tiger",
    "topaz", "tulip", "velvet", "violet", "willow", "winter", "zephyr",
]
RECON = [
    "uname -a", "cat /proc/cpuinfo", "whoami", "id", "w", "free -m", "nproc", "uptime", "ls -la", "ps aux",
    "cat /etc/issue", "lscpu", "df -h", "ifconfig", "crontab -l", "echo $SHELL", "cat /etc/passwd", "history",
    "hostname", "cat /proc/cpuinfo | grep name | wc -l",
]
_TOKEN_COMMANDS = [
    "cd /tmp/.{tok}", "echo {tok} > /tmp/.{word}", "ls -la /var/{word}/{tok}", "cat /home/{word}/.{tok}",
    "mkdir -p /dev/shm/{tok}", "grep -r {tok} /etc", "touch /tmp/{word}.{tok}", "find / -name '*{tok}*'",
    "export {word}={tok}", "rm -rf /tmp/{word}-{tok}",
]
WEB_PATHS = [
    "/", "/wp-login.php", "/xmlrpc.php", "/.env", "/admin", "/phpmyadmin/", "/cgi-bin/luci", "/boaform/admin/formLogin",
    "/HNAP1/", "/actuator/health", "/solr/admin/info/system", "/.git/config", "/manager/html", "/owa/", "/login",
    "/api/v1/pods", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/console", "/server-status", "/robots.txt",
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 zgrab/0.x", "curl/7.88.1", "python-requests/2.31.0", "Go-http-client/1.1", "masscan/1.3",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)", "Wget/1.21.2",
]
PROBE_PORTS = [21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 443, 445, 993, 1433, 1723, 1883, 2375, 3306, 3389,
               5060, 5432, 5900, 6379, 7547, 8080, 8443, 8888, 9200, 11211, 27017]
BANNER_FAMILIES = ["Go", "libssh", "libssh2", "paramiko", "AsyncSSH", "JSCH", "RubyNetSSH", "Erlang", "MoTTY",
                   "dropbear", "Twisted", "Renci.SshNet.SshClient", "Granados", "WinSCP"]
_STOCK_SUFFIXES = {"OpenSSH": ["7.4", "8.2p1 Ubuntu-4ubuntu0.5", "8.4p1 Debian-5", "9.3", "9.6"],
                   "PuTTY": ["_Release_0.76", "_Release_0.78", "_Release_0.80"]}


# The realistic background (`bot` actors): what unrelated SSH bots really share. Weights are
# rough shares seen on public honeynets: most bots speak through a client library.
LIBRARY_BANNERS = [
    ("SSH-2.0-Go", 0.34), ("SSH-2.0-libssh_0.9.6", 0.12), ("SSH-2.0-libssh2_1.10.0", 0.08),
    ("SSH-2.0-libssh2_1.4.3", 0.05), ("SSH-2.0-paramiko_3.4.0", 0.07), ("SSH-2.0-paramiko_2.12.0", 0.03),
    ("SSH-2.0-AsyncSSH_2.14.2", 0.04), ("SSH-2.0-JSCH-0.1.54", 0.03), ("SSH-2.0-OpenSSH_7.4", 0.08),
    ("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", 0.08), ("SSH-2.0-PuTTY_Release_0.80", 0.02),
    ("SSH-2.0-Renci.SshNet.SshClient.0.0.1", 0.03), ("SSH-2.0-russh_0.40.2", 0.03),
]
# A common dictionary, most popular first (Zipf-like draws): every bot tries a subset of it.
DICTIONARY = [
    *COMMON_PAIRS, ("root", "1234"), ("root", "12345"), ("root", "qwerty"), ("root", "111111"),
    ("admin", "password"), ("admin", "123456"), ("root", "default"), ("root", "ubnt"), ("ubnt", "ubnt"),
    ("oracle", "oracle"), ("postgres", "postgres"), ("git", "git"), ("root", "changeme"), ("root", "P@ssw0rd"),
    ("root", "abc123"), ("root", "raspberry"), ("admin", "admin123"), ("user", "123456"), ("root", "Passw0rd"),
    ("root", "qwe123"), ("ftpuser", "ftpuser"), ("deploy", "deploy"), ("hadoop", "hadoop"), ("mysql", "mysql"),
    ("root", "vizxv"), ("root", "xc3511"), ("admin", "7ujMko0admin"), ("root", "888888"), ("root", "54321"),
]
# Mirai-family bots carry one ordered list each, from leaked source: unrelated operators share it.
MIRAI_LISTS = [
    [("root", "xc3511"), ("root", "vizxv"), ("admin", "admin"), ("root", "888888"), ("root", "default")],
    [("root", "root"), ("admin", "7ujMko0admin"), ("root", "54321"), ("support", "support"), ("root", "12345")],
    [("admin", "password"), ("root", "admin"), ("ubnt", "ubnt"), ("root", "1234"), ("user", "user")],
]
RECON_SETS = [
    ["uname -a", "cat /proc/cpuinfo", "nproc"],
    ["uname -a", "nproc", "free -m", "whoami"],
    ["cat /proc/cpuinfo | grep name | wc -l", "uname -a", "free -m"],
    ["whoami", "uname -a", "cat /proc/cpuinfo", "lscpu"],
    ["echo $SHELL", "uname -a", "nproc", "uptime"],
    ["cat /etc/issue", "uname -a", "w"],
]
# Public hosts many unrelated bots fetch from (each bot its own file).
PUBLIC_HOSTS = ["raw.githubusercontent.com", "pastebin.com", "transfer.sh", "github.com"]


def library_banner(rng: random.Random) -> str:
    draw = rng.random() * sum(w for _, w in LIBRARY_BANNERS)
    for name, weight in LIBRARY_BANNERS:
        draw -= weight
        if draw < 0:
            return name
    return LIBRARY_BANNERS[-1][0]


def dictionary_pair(rng: random.Random) -> tuple[str, str]:
    """A pair of the common dictionary, the first ones far more often (rank ~ 1/x)."""
    return DICTIONARY[min(int(len(DICTIONARY) ** rng.random()) - 1, len(DICTIONARY) - 1)]


def stock_banners(ignored_prefixes: list[str]) -> list[str]:
    """Client banners the campaign detector is configured to ignore (empty if it ignores none)."""
    banners = []
    for prefix in ignored_prefixes:
        family = next((f for f in _STOCK_SUFFIXES if f in prefix), None)
        banners += [prefix + suffix for suffix in _STOCK_SUFFIXES[family]] if family else [prefix]
    return banners


def pick(rng: random.Random, options: list[Any] | tuple[Any, ...]) -> Any:
    """rng.choice without its overhead: the background draws millions of these."""
    return options[int(rng.random() * len(options))]


def between(rng: random.Random, low: int, high: int) -> int:
    """rng.randint(low, high) without its overhead."""
    return low + int(rng.random() * (high - low + 1))


def random_pair(rng: random.Random) -> tuple[str, str]:
    """A credential pair from a dictionary of tens of millions: two sessions share one by chance only rarely."""
    user = "root" if rng.random() < 0.5 else pick(rng, USERS)
    word = pick(rng, WORDS)
    return user, (word.capitalize() if rng.random() < 0.3 else word) + str(int(rng.random() * 1_000_000))


def token_command(rng: random.Random) -> str:
    """A command carrying 32 random bits, so no two sessions share it by chance."""
    return pick(rng, _TOKEN_COMMANDS).format(tok=f"{rng.getrandbits(32):08x}", word=pick(rng, WORDS))


def sha256(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


# --------------------------------------------------------------------------- records


def banner(version: str | None) -> dict[str, Any]:
    step: dict[str, Any] = {"kind": "connection", "action": "connect"}
    if version is not None:
        step["client_version"] = version
    return step


def login(user: str, password: str, success: bool) -> dict[str, Any]:
    return {"kind": "login_attempt", "username": user, "password": password,
            "outcome": "success" if success else "failure"}


def command(text: str) -> dict[str, Any]:
    return {"kind": "command", "command": text, "outcome": "success"}


def download(url: str, digest: str) -> dict[str, Any]:
    return {"kind": "file_download", "url": url, "sha256": digest, "outcome": "success"}


def probe() -> dict[str, Any]:
    return {"kind": "scan", "action": "syn"}


def web(rng: random.Random) -> dict[str, Any]:
    return {"kind": "web_request", "action": "POST" if rng.random() < 0.2 else "GET", "url": pick(rng, WEB_PATHS),
            "user_agent": pick(rng, USER_AGENTS)}


def session(rng: random.Random, *, source: str, sensor: int, start_ms: int, port: int, protocol: str | None,
            steps: list[dict[str, Any]], gap_ms: tuple[int, int] = (300, 3000), with_id: bool = True) -> list[Item]:
    """One connection's records at one sensor, `gap_ms` apart (scans: `with_id=False`)."""
    session_id = f"{rng.getrandbits(48):012x}" if with_id else None
    src_port = between(rng, 1024, 65535)
    items: list[Item] = []
    t = start_ms
    low, high = gap_ms
    for i, step in enumerate(steps):
        if i:
            t += between(rng, low, high)
        record: dict[str, Any] = {"kind": step["kind"], "src_ip": source, "src_port": src_port, "dst_port": port,
                                  "transport": "tcp"}
        if protocol is not None:
            record["protocol"] = protocol
        if session_id is not None:
            record["session"] = session_id
        record.update(step)
        items.append((t, sensor, record))
    return items
