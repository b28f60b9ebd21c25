"""Hostile input for the dionaea, dionaea-connections, dionaea-capture, glastopf, honeytrap and
conpot adapters and their detect functions: any JSON value, and records shaped like real ones
(nested and flat layouts, numbered keys, PDU lists, raw HTTP and Python reprs) with fuzzed
values. Only RecordRejected and RecordIgnored may leave an adapter, detect never raises, and
every event must re-encode and respect the limits (checked by the shared `check_events`)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honeyatlas.adapters import Adapter, conpot, dionaea, dionaea_hpfeeds, glastopf, honeytrap
from tests.adapters.test_adapters_hostile import (
    check_group_adapter,
    hostile_text,
    json_values,
    plausible,
    raws,
    zones,
)

ADAPTERS = [
    dionaea.ADAPTER, dionaea_hpfeeds.CONNECTIONS, dionaea_hpfeeds.CAPTURE, glastopf.ADAPTER, honeytrap.ADAPTER,
    conpot.ADAPTER,
]
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDGE_ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]


def some(*keys: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, plausible))


def rows(*keys: str) -> st.SearchStrategy[Any]:
    """A nested list of objects, a flat_data object of lists, or anything."""
    nested = st.lists(some(*keys) | plausible, max_size=5)
    flat = st.dictionaries(st.sampled_from(keys), st.lists(plausible, max_size=5) | plausible, max_size=len(keys))
    return nested | flat | plausible


addresses = plausible | st.sampled_from(["::ffff:198.51.100.7", "2001:db8::1", "0.0.0.0", ""])
dionaea_like = st.fixed_dictionaries(
    {"connection": st.fixed_dictionaries({}, optional={
        "protocol": st.sampled_from(["smbd", "httpd", "ftpd", "SipSession", "x" * 300]) | plausible,
        "transport": st.sampled_from(["tcp", "udp", "tls", "TCP", "t c p"]) | plausible,
        "type": st.sampled_from(["accept", "connect", "listen", "reject", "Accept"]) | plausible,
        "remote": some("address", "port", "hostname") | plausible,
        "local": some("address", "port") | plausible,
    }) | plausible},
    optional={
        "timestamp": plausible, "src_ip": addresses, "src_port": plausible, "dst_ip": addresses,
        "dst_port": plausible, "dest_ip": addresses, "dest_port": plausible, "src_hostname": plausible,
        "credentials": rows("username", "password"),
        "ftp": st.fixed_dictionaries({}, optional={"commands": rows("command", "arguments")}) | plausible,
        "p0f": plausible,
    },
)
connections_like = st.fixed_dictionaries(
    {"connection_type": st.sampled_from(["accept", "connect", "listen", "reject", "pending", "?"]) | plausible},
    optional={
        "connection_transport": plausible, "connection_protocol": plausible, "remote_host": addresses,
        "remote_port": plausible, "remote_hostname": plausible, "local_host": addresses, "local_port": plausible,
    },
)
capture_like = st.fixed_dictionaries(
    {"md5": st.sampled_from(["0724c68f973e4e35391849cfb5259f86", "A" * 32, "a" * 31]) | plausible},
    optional={
        "time": st.sampled_from([
            "2026-11-27 21:46:12.531190 UTC +0000", "9999-12-31 23:59:59.999999 UTC +0000",
            "0001-01-01 00:00:00 GMT -1200", "2026-02-30 25:00:00.1 UTC +0000",
        ]) | plausible,
        "saddr": addresses, "sport": plausible, "daddr": addresses, "dport": plausible, "sha512": plausible,
        "url": plausible,
    },
)
raw_requests = st.builds(
    lambda method, target, headers, newline: (
        f"{method} {target} HTTP/1.1{newline}" + "".join(f"{k}: {v}{newline}" for k, v in headers) + newline
    ),
    st.sampled_from(["GET", "POST", "get", "", "M" * 40]) | hostile_text,
    st.sampled_from(["/", "/x?a=http://b", "http://x/y", ""]) | hostile_text,
    st.lists(st.tuples(st.sampled_from(["Host", "User-Agent", "host", "X"]),
                       st.sampled_from(["[::1]:80", "a.b:8080", "x y", "ä.example"]) | hostile_text), max_size=4),
    st.sampled_from(["\r\n", "\n", "\r"]),
)
glastopf_like = st.fixed_dictionaries(
    {"source": st.lists(addresses, max_size=3) | plausible,
     "pattern": st.sampled_from(["rfi", "unknown", "robots", "sqli", "php_cgi_rce"]) | plausible},
    optional={
        "time": st.sampled_from(["2026-11-27 22:42:54", "0001-01-01 00:00:00", "9999-12-31 23:59:59"]) | plausible,
        "request_raw": raw_requests | plausible, "request_url": plausible, "filename": plausible, "dst_port": plausible,
        "request": st.fixed_dictionaries({}, optional={
            "method": plausible, "url": plausible, "body": plausible,
            "header": st.dictionaries(st.sampled_from(["Host", "User-Agent", "host"]), plausible) | plausible,
        }) | plausible,
    },
)
payloads = some("length", "data_hex", "sha512_hash") | st.fixed_dictionaries(
    {"md5_hash": st.sampled_from(["d41d8cd98f00b204e9800998ecf8427e", "A" * 32]) | plausible},
    optional={"length": st.sampled_from([0, 1, -1]) | plausible},
)
download = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["ftp", "tftp", "x y", ""]) | plausible, "remote_ip": addresses,
    "remote_port": plausible, "uri": plausible, "filename": plausible, "username": plausible,
    "payload": payloads | plausible,
})
numbered = st.dictionaries(
    st.sampled_from(["uri_0", "type_1", "remote_ip_0", "payload_0", "filename_2", "x_999999", "_1", "uri"]),
    payloads | plausible, max_size=6,
)
honeytrap_like = st.fixed_dictionaries(
    {"attack_connection": st.fixed_dictionaries({}, optional={
        "protocol": st.sampled_from(["tcp", "udp", "TCP"]) | plausible, "remote_ip": addresses,
        "remote_port": plausible, "local_ip": addresses, "local_port": plausible, "src_ip": addresses,
        "dest_port": plausible, "payload": payloads | plausible,
    }) | plausible},
    optional={
        "is_virtual": st.booleans() | plausible,
        "start_time": st.sampled_from([
            "2026-11-27T21:50:01Z", "2016-03-01 12:34:56 CET", "0001-01-01 00:00:00 XYZ", "9999-12-31 23:59:59 UTC",
        ]) | plausible,
        "@timestamp": plausible, "src_ip": addresses, "src_port": plausible, "dest_ip": addresses,
        "dest_port": plausible, "download_tries": plausible,
        "downloads": st.lists(download | plausible, max_size=3) | numbered | plausible,
    },
)
http_reprs = st.builds(
    lambda path, headers: repr((path, headers, None)),
    st.sampled_from(["/", "/it's", '/"q"']) | hostile_text,
    st.lists(st.tuples(st.sampled_from(["Host", "User-Agent", "user-agent"]),
                       st.sampled_from(["192.0.2.10", "x y", "a'b"]) | hostile_text), max_size=3),
)
pdu = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["NEW_CONNECTION", "CONNECTION_LOST", "SNMPv2c get", "AST I20100", ""]) | plausible,
    "request": http_reprs | plausible, "response": plausible,
    "function_code": st.integers(min_value=-1, max_value=300) | plausible, "slave_id": plausible,
})
conpot_like = st.fixed_dictionaries(
    {"data_type": st.sampled_from(["modbus", "http", "s7comm", "guardian_ast", "IEC104", " HTTP "]) | plausible},
    optional={
        "remote": st.lists(addresses | plausible, max_size=3) | plausible, "local": st.lists(plausible, max_size=3),
        "src_ip": addresses, "src_port": plausible, "public_ip": addresses, "id": plausible, "session_id": plausible,
        "timestamp": plausible, "event_type": plausible, "request": http_reprs | plausible,
        "data": pdu | st.lists(pdu | plausible, max_size=4)
        | st.dictionaries(st.sampled_from(["0", "15", "x"]), pdu | plausible, max_size=3) | plausible,
    },
)
SHAPES = {
    "dionaea": dionaea_like, "dionaea-connections": connections_like, "dionaea-capture": capture_like,
    "glastopf": glastopf_like, "honeytrap": honeytrap_like, "conpot": conpot_like,
}


def check(adapter: Adapter, record: Any, zone: timezone, raw: str = "{}") -> None:
    check_group_adapter(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@FAST
@given(record=json_values, zone=zones, raw=raws)
def test_any_json_value(adapter: Adapter, record: Any, zone: timezone, raw: str) -> None:
    check(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@FAST
@given(data=st.data(), zone=zones, raw=raws)
def test_records_shaped_like_its_own(adapter: Adapter, data: st.DataObject, zone: timezone, raw: str) -> None:
    check(adapter, data.draw(SHAPES[adapter.name], label="record"), zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@FAST
@given(record=st.one_of(*SHAPES.values()), zone=zones)
def test_records_shaped_like_a_sibling_format(adapter: Adapter, record: Any, zone: timezone) -> None:
    check(adapter, record, zone)


EDGE_CASES = [
    (dionaea.ADAPTER, {"connection": {"type": "accept"}, "credentials": {"username": ["u"] * 100_000}}),
    (dionaea.ADAPTER, {"connection": {"type": "accept"}, "ftp": {"commands": [{"command": "x", "arguments": [10**5000]}]}}),
    (dionaea.ADAPTER, {"connection": {"type": "accept", "transport": "t" * 10**6}, "timestamp": 1e300}),
    (dionaea_hpfeeds.CAPTURE, {"md5": "0" * 32, "time": " " * 10**6 + "2026-11-27 21:46:12"}),
    (glastopf.ADAPTER, {"source": [], "pattern": "rfi", "request_raw": "GET / HTTP/1.1\r\n" + "Host: a\r\n" * 100_000}),
    (glastopf.ADAPTER, {"source": ["1.2.3.4"] * 10**5, "pattern": ["rfi"], "request_raw": "\n" * 10**6}),
    (honeytrap.ADAPTER, {"attack_connection": {}, "downloads": {f"uri_{n}": "x" for n in range(10_000)}}),
    (honeytrap.ADAPTER, {"attack_connection": {"payload": {"md5_hash": "a" * 32, "length": 10**5000}}}),
    (conpot.ADAPTER, {"data_type": "http", "data": {"request": "('" + "\\'" * 100_000}}),
    (conpot.ADAPTER, {"data_type": "modbus", "data": {str(n): {"function_code": n} for n in range(5000)}}),
]


@pytest.mark.parametrize(
    ("adapter", "record"), EDGE_CASES, ids=[f"{adapter.name}-{n}" for n, (adapter, _) in enumerate(EDGE_CASES)],
)
@pytest.mark.parametrize("zone", EDGE_ZONES, ids=str)
def test_known_edge_cases(adapter: Adapter, record: Any, zone: timezone) -> None:
    check(adapter, record, zone)
