"""GeoIP against the real bundled databases, and against tiny city databases built here."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from maxminddb.decoder import Decoder
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from honeyatlas.enrichment.geoip import (
    BUNDLED_ASN_DB,
    BUNDLED_CENTROIDS,
    BUNDLED_COUNTRY_DB,
    DEFAULT_CITY_SEARCH_DIRS,
    TEXT_LIMIT,
    GeoIP,
    find_city_database,
    locatable_address,
)
from honeyatlas.event import Precision

CENTROIDS = json.loads(BUNDLED_CENTROIDS.read_text(encoding="utf-8"))
# Codes the country database returns that no map draws: AN, the Netherlands Antilles,
# dissolved in 2010 but still in some registry records.
NO_CENTROID = {"AN"}


def make_geoip(city_path: Path | None = None, cache_size: int = 1000) -> GeoIP:
    return GeoIP(
        city_path=city_path,
        country_path=BUNDLED_COUNTRY_DB,
        asn_path=BUNDLED_ASN_DB,
        centroids_path=BUNDLED_CENTROIDS,
        cache_size=cache_size,
    )


@pytest.fixture
def geoip() -> Iterator[GeoIP]:
    table = make_geoip()
    table.open()
    yield table
    table.close()


def centroid(code: str) -> tuple[float, float]:
    lat, lon, _name = CENTROIDS[code]
    return lat, lon


# Each expectation was checked against the shipped data (see data/ATTRIBUTION.md for versions).
@pytest.mark.parametrize(
    ("ip", "country", "asn", "org_part"),
    [
        ("8.8.8.8", "US", 15169, "Google"),
        ("1.1.1.1", "AU", 13335, "Cloudflare"),  # APNIC registers 1.1.1.0/24 in Australia
        ("2001:4860:4860::8888", "US", 15169, "Google"),
        ("2606:4700:4700::1111", "US", 13335, "Cloudflare"),
        ("::ffff:8.8.8.8", "US", 15169, "Google"),  # dual-stack sockets log IPv4 this way
        ("2002:808:808::1", "US", 15169, "Google"),  # 6to4 carries 8.8.8.8
    ],
)
def test_public_addresses_resolve_to_country_centroid_and_asn(
    geoip: GeoIP, ip: str, country: str, asn: int, org_part: str
) -> None:
    geo = geoip.lookup(ip)
    assert geo is not None
    assert geo.precision == Precision.COUNTRY
    assert geo.country == country
    assert (geo.lat, geo.lon) == centroid(country)
    assert geo.city is None
    assert geo.asn == asn
    assert geo.org is not None and org_part in geo.org


def test_a_country_without_centroid_keeps_its_code(geoip: GeoIP) -> None:
    geo = geoip.lookup("2401:b60:1a10::1")  # the one network the data still places in AN
    assert geo is not None
    assert (geo.country, geo.lat, geo.lon, geo.precision) == ("AN", None, None, Precision.NONE)


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1",
        "fe80::1", "fe80::1%eth0", "fd00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
        "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1",
        "2001:db8::1", "3fff::1", "2001::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:a00:1::1",
        "", "not an ip", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "8.8.8.8\x00",
        "１.２.３.４", "::ffff:1.2.3", "2001:4860:4860::8888::1", "x" * 10_000,
    ],
)  # fmt: skip
def test_unlocatable_or_garbage_gives_none(geoip: GeoIP, ip: str) -> None:
    assert geoip.lookup(ip) is None


def test_a_non_string_gives_none(geoip: GeoIP) -> None:
    assert geoip.lookup(None) is None  # type: ignore[arg-type]
    assert geoip.lookup(123) is None  # type: ignore[arg-type]


@given(st.ip_addresses())
def test_locatable_agrees_with_ipaddress_on_private_and_loopback(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if addr.is_loopback or addr.is_private or addr.is_multicast or addr.is_reserved:
        embedded = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
        # A mapped address is judged by the IPv4 address it carries.
        if embedded is None or not embedded.is_global:
            assert locatable_address(str(addr)) is None


@given(st.ip_addresses(v=4))
def test_ipv4_text_forms_agree(addr: ipaddress.IPv4Address) -> None:
    assert locatable_address(f"::ffff:{addr}") == locatable_address(str(addr))


def records_in(path: Path) -> list[object]:
    """Every value in an MMDB file's data section, decoded in order.

    Walking the search tree visits a million networks (seconds); the data section holds
    each distinct record once (milliseconds).
    """
    with maxminddb.open_database(path, maxminddb.MODE_MEMORY) as reader:
        meta = reader.metadata()
    buffer = path.read_bytes()
    start = meta.node_count * meta.record_size // 4 + 16  # tree, then a 16-byte separator
    end = buffer.rindex(b"\xab\xcd\xefMaxMind.com")
    decoder = Decoder(buffer, pointer_base=start)
    values, offset = [], start
    while offset < end:
        value, offset = decoder.decode(offset)
        values.append(value)
    return values


def test_every_country_code_has_a_centroid() -> None:
    """A country the database returns but the table lacks would have no place on the map."""
    codes = {r["country_code"] for r in records_in(BUNDLED_COUNTRY_DB) if isinstance(r, dict)}
    assert len(codes) > 240
    assert codes - set(CENTROIDS) == NO_CENTROID


def test_centroids_are_well_formed() -> None:
    assert list(CENTROIDS) == sorted(CENTROIDS)
    for code, (lat, lon, name) in CENTROIDS.items():
        assert len(code) == 2 and code.isupper()
        assert -90 <= lat <= 90 and -180 <= lon <= 180
        assert name and isinstance(name, str)
    # The largest polygon, not the MultiPolygon, so overseas territories do not pull
    # France, Norway or the Netherlands into the sea.
    assert 42 < CENTROIDS["FR"][0] < 50 and -2 < CENTROIDS["FR"][1] < 7
    assert 58 < CENTROIDS["NO"][0] < 71 and 5 < CENTROIDS["NO"][1] < 25
    assert 50 < CENTROIDS["NL"][0] < 54 and 3 < CENTROIDS["NL"][1] < 8


def test_cache_is_bounded_and_counts() -> None:
    table = make_geoip(cache_size=3)
    table.open()
    try:
        for ip in ("8.8.8.8", "1.1.1.1", "127.0.0.1", "9.9.9.9", "8.8.4.4"):
            table.lookup(ip)
        info = table.cache_info()
        assert info == {"hits": 0, "misses": 5, "size": 3, "max_size": 3, "evictions": 2}
        # The least recently used went first: 8.8.8.8 and 1.1.1.1 are gone, the rest stay.
        first = table.lookup("127.0.0.1")  # a cached negative answer
        assert first is None
        again = table.lookup("9.9.9.9")
        assert again is table.lookup("9.9.9.9")
        assert table.cache_info()["hits"] == 3
        table.lookup("8.8.8.8")
        info = table.cache_info()
        assert info["misses"] == 6 and info["evictions"] == 3 and info["size"] == 3
        # 8.8.4.4 was the least recently used after the hits above.
        table.lookup("8.8.4.4")
        assert table.cache_info()["misses"] == 7
    finally:
        table.close()


def test_cache_size_zero_caches_nothing() -> None:
    table = make_geoip(cache_size=0)
    table.open()
    try:
        assert table.lookup("8.8.8.8") == table.lookup("8.8.8.8")
        assert table.cache_info() == {"hits": 0, "misses": 2, "size": 0, "max_size": 0, "evictions": 0}
    finally:
        table.close()


def test_constructor_does_no_io_and_lookup_needs_open(tmp_path: Path) -> None:
    missing = tmp_path / "absent.mmdb"
    table = GeoIP(city_path=missing, country_path=missing, asn_path=missing, centroids_path=missing, cache_size=10)
    with pytest.raises(RuntimeError, match="open"):
        table.lookup("8.8.8.8")
    with pytest.raises(FileNotFoundError):
        table.open()


def test_a_broken_city_database_is_a_fault_and_the_others_still_answer(tmp_path: Path) -> None:
    """A corrupt city file no longer stops the table (issue 14): it is reported, and the
    bundled country and ASN databases keep answering at country precision."""
    broken = tmp_path / "GeoLite2-City.mmdb"
    broken.write_bytes(b"not an mmdb")
    table = make_geoip(city_path=broken)
    table.open()
    try:
        [fault] = table.faults()
        assert fault.startswith(f"corrupt {broken}: ") and len(fault) > len(f"corrupt {broken}: ")
        assert table.city_database is None
        geo = table.lookup("8.8.8.8")
        assert geo is not None and geo.country == "US" and geo.precision == "country"
    finally:
        table.close()


# --- city databases, written here in each vendor's layout -------------------------------

PARIS = ("81.2.69.0/24", 48.8566, 2.3522)
TOKYO_V6 = ("2400:4000::/32", 35.6895, 139.6917)


def write_mmdb(path: Path, database_type: str, records: list[tuple[str, dict]]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, record in records:
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def maxmind_city(path: Path) -> Path:
    def record(city: str, country: str, lat: float, lon: float) -> dict:
        return {
            "city": {"geoname_id": 1, "names": {"en": city, "fr": city}},
            "country": {"iso_code": country, "names": {"en": country}},
            "location": {"latitude": lat, "longitude": lon, "accuracy_radius": 20},
        }

    country_only = {  # what MaxMind gives when it knows no city: the country's point
        "country": {"iso_code": "DE"},
        "location": {"latitude": 51.2993, "longitude": 9.491, "accuracy_radius": 1000},
    }
    return write_mmdb(
        path,
        "GeoLite2-City",
        [
            (PARIS[0], record("Paris", "FR", PARIS[1], PARIS[2])),
            (TOKYO_V6[0], record("Tokyo", "JP", TOKYO_V6[1], TOKYO_V6[2])),
            ("5.9.0.0/16", country_only),
        ],
    )


def ipinfo_city(path: Path) -> Path:
    def record(city: str, country: str, lat: float, lon: float) -> dict:
        # IPinfo stores coordinates as text and the ASN as "AS<n>".
        return {
            "city": city,
            "country": country,
            "lat": str(lat),
            "lng": str(lon),
            "asn": "AS64500",
            "as_name": "Example Transit\x07 " + "x" * 300,
        }

    return write_mmdb(
        path,
        "ipinfo standard_location.mmdb",
        [
            (PARIS[0], record("Paris", "FR", PARIS[1], PARIS[2])),
            (TOKYO_V6[0], record("Tokyo", "JP", TOKYO_V6[1], TOKYO_V6[2])),
        ],
    )


@pytest.mark.parametrize(
    ("file_name", "build"),
    [("GeoLite2-City.mmdb", maxmind_city), ("ipinfo_city_sample.mmdb", ipinfo_city)],
)
def test_city_database_gives_city_precision(tmp_path: Path, file_name: str, build) -> None:
    geoip_dir = tmp_path / "geoip"
    geoip_dir.mkdir()
    build(geoip_dir / file_name)
    (geoip_dir / "README.txt").write_text("not a database")
    found = find_city_database([tmp_path / "missing", geoip_dir, *DEFAULT_CITY_SEARCH_DIRS])
    assert found == geoip_dir / file_name

    table = make_geoip(city_path=found)
    assert table.city_database == found
    table.open()
    try:
        paris = table.lookup("81.2.69.142")
        assert paris is not None
        assert (paris.precision, paris.city, paris.country) == (Precision.CITY, "Paris", "FR")
        assert (paris.lat, paris.lon) == (PARIS[1], PARIS[2])
        tokyo = table.lookup("2400:4000::1")
        assert tokyo is not None
        assert (tokyo.precision, tokyo.city, tokyo.country) == (Precision.CITY, "Tokyo", "JP")
        assert (tokyo.lat, tokyo.lon) == (TOKYO_V6[1], TOKYO_V6[2])
        # Outside the city database: the bundled country database and its centroid.
        google = table.lookup("8.8.8.8")
        assert google is not None
        assert (google.precision, google.country, google.city, google.asn) == (Precision.COUNTRY, "US", None, 15169)
        assert (google.lat, google.lon) == centroid("US")
    finally:
        table.close()


def test_city_fields_from_each_layout(tmp_path: Path) -> None:
    maxmind = make_geoip(city_path=maxmind_city(tmp_path / "a.mmdb"))
    ipinfo = make_geoip(city_path=ipinfo_city(tmp_path / "b.mmdb"))
    maxmind.open()
    ipinfo.open()
    try:
        # MaxMind has no ASN in a city database: it comes from the bundled ASN database.
        paris = maxmind.lookup("81.2.69.142")
        assert paris is not None and paris.asn == bundled_asn("81.2.69.142")
        # A country-only MaxMind record is country precision at the centroid, not "city".
        germany = maxmind.lookup("5.9.1.1")
        assert germany is not None
        assert (germany.precision, germany.country, germany.city) == (Precision.COUNTRY, "DE", None)
        assert (germany.lat, germany.lon) == centroid("DE")
        # IPinfo carries the ASN itself; database text is cleaned and capped.
        paris = ipinfo.lookup("81.2.69.142")
        assert paris is not None and paris.asn == 64500
        assert paris.org is not None and paris.org.startswith("Example Transit x")
        assert len(paris.org) == TEXT_LIMIT
    finally:
        maxmind.close()
        ipinfo.close()


def bundled_asn(ip: str) -> int:
    with maxminddb.open_database(BUNDLED_ASN_DB) as reader:
        record = reader.get(ip)
    assert isinstance(record, dict)
    return record["autonomous_system_number"]


def test_flat_ip_location_db_layout_and_ipv4_only_database(tmp_path: Path) -> None:
    path = tmp_path / "city-ipv4.mmdb"
    writer = MMDBWriter(ip_version=4, database_type="ip-location-db city")
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"city": "Paris", "country_code": "FR", "latitude": 48.8566, "longitude": 2.3522},
    )
    writer.to_db_file(str(path))
    table = make_geoip(city_path=path)
    table.open()
    try:
        paris = table.lookup("81.2.69.142")
        assert paris is not None
        assert (paris.precision, paris.city, paris.lat, paris.lon) == (Precision.CITY, "Paris", 48.8566, 2.3522)
        # An IPv6 address is never asked of an IPv4-only database.
        google = table.lookup("2001:4860:4860::8888")
        assert google is not None and google.precision == Precision.COUNTRY
    finally:
        table.close()


def test_find_city_database_prefers_full_databases_and_newest(tmp_path: Path) -> None:
    for name in (
        "dbip-city-ipv4.mmdb",
        "dbip-city-lite-2025-05.mmdb",
        "dbip-city-lite-2025-06.mmdb",
        "GeoLite2-Country.mmdb",
    ):
        (tmp_path / name).write_bytes(b"")
    assert find_city_database([tmp_path]) == tmp_path / "dbip-city-lite-2025-06.mmdb"
    (tmp_path / "GeoLite2-City.mmdb").write_bytes(b"")
    assert find_city_database([tmp_path]) == tmp_path / "GeoLite2-City.mmdb"
    assert find_city_database([tmp_path / "nothing-here"]) is None
    assert find_city_database([tmp_path / "GeoLite2-City.mmdb"]) is None  # a file, not a directory


def test_find_city_database_takes_single_family_files_last(tmp_path: Path) -> None:
    (tmp_path / "geolite2-city-ipv6.mmdb").write_bytes(b"")
    (tmp_path / "geolite2-city-ipv4.mmdb").write_bytes(b"")
    assert find_city_database([tmp_path]) == tmp_path / "geolite2-city-ipv4.mmdb"
    (tmp_path / "dbip-city.mmdb").write_bytes(b"")
    assert find_city_database([tmp_path]) == tmp_path / "dbip-city.mmdb"
    # Directories are tried in order: the caller's own directory wins.
    first = tmp_path / "first"
    first.mkdir()
    (first / "standard_location.mmdb").write_bytes(b"")
    assert find_city_database([first, tmp_path]) == first / "standard_location.mmdb"
    assert find_city_database([]) is None
