"""The glastopf adapter (hpfeeds glastopf.events). The sample's first line is the mnemosyne
fixture verbatim; the others are written from glastopf's AttackEvent.event_dict() and its
older `request` layout; then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.glastopf import ADAPTER, DEFAULT_PORT, detect
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "glastopf.jsonl"
GOLDEN = DATA / "golden" / "glastopf.expected.jsonl"
BASE: dict[str, Any] = {
    "time": "2026-11-27 22:42:54", "source": ["198.51.100.7", 41022], "request_url": "/index.php",
    "request_raw": "GET /index.php HTTP/1.1\r\nHost: 192.0.2.10\r\nUser-Agent: curl/8.5.0\r\n\r\n",
    "pattern": "unknown", "filename": None, "version": "3.1.2", "sensorid": "x", "known_file": False,
}


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-glastopf-01", honeypot="glastopf", received=RECEIVED, timezone=zone, raw=raw)


def adapt_one(zone: timezone = UTC, **fields: Any) -> Event:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    (event,) = ADAPTER.adapt(record, context(json.dumps(record), zone))
    return event


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(ADAPTER, SAMPLE, sensor="lab-glastopf-01", honeypot="glastopf")
    check_golden(lines, GOLDEN)
    assert ignored == []
    for line, record in sample_records(SAMPLE):
        assert detect(record)
        assert ADAPTER.adapt(record, context(line))[0].warnings == ()


@pytest.mark.parametrize("pattern", ["rfi", "lfi", "sqli", "xss", "php_cgi_rce"])
def test_attack_patterns_are_exploits_signed_with_the_pattern(pattern: str) -> None:
    event = adapt_one(pattern=pattern)
    assert (event.kind, event.signature, event.outcome) == (Kind.EXPLOIT, pattern, Outcome.UNKNOWN)


@pytest.mark.parametrize("pattern", ["robots", "phpmyadmin", "tomcat_manager", "login", "style_css", "head"])
def test_other_patterns_are_web_requests_signed_with_the_pattern(pattern: str) -> None:
    event = adapt_one(pattern=pattern)
    assert (event.kind, event.signature) == (Kind.WEB_REQUEST, pattern)


def test_unknown_pattern_has_no_signature() -> None:
    event = adapt_one()
    assert (event.kind, event.signature) == (Kind.WEB_REQUEST, None)


def test_request_raw_gives_method_host_and_user_agent() -> None:
    event = adapt_one()
    assert event.action == "glastopf.GET"
    assert event.url == "http://192.0.2.10/index.php"
    assert event.user_agent == "curl/8.5.0"
    assert (event.protocol, event.transport) == ("http", "tcp")
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 41022, None, DEFAULT_PORT)


def test_headers_are_case_insensitive_and_lf_only_requests_parse() -> None:
    raw = "POST /x HTTP/1.0\nhost: example.org:8080\nuser-agent: ZmEu\n\nbody: not-a-header"
    event = adapt_one(request_url="/x", request_raw=raw)
    assert (event.action, event.url, event.user_agent) == ("glastopf.POST", "http://example.org:8080/x", "ZmEu")


def test_a_hostile_host_header_is_not_glued_to_the_path() -> None:
    raw = "GET /x HTTP/1.1\r\nHost: evil.example/<script>\r\n\r\n"
    event = adapt_one(request_url="/x", request_raw=raw)
    assert event.url == "/x"
    assert event.warnings == ("Host header is not a host name; url is the path alone",)


def test_absolute_request_url_is_kept_as_is() -> None:
    raw = "GET http://203.0.113.5/proxy-check HTTP/1.1\r\nHost: 203.0.113.5\r\n\r\n"
    event = adapt_one(request_url="http://203.0.113.5/proxy-check", request_raw=raw)
    assert event.url == "http://203.0.113.5/proxy-check"


def test_request_url_missing_falls_back_to_the_request_line() -> None:
    event = adapt_one(request_url=None)
    assert event.url == "http://192.0.2.10/index.php"


def test_malformed_request_raw_loses_only_what_it_cannot_give() -> None:
    event = adapt_one(request_raw="\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS hello on port 80
    assert (event.action, event.user_agent) == ("glastopf.request", None)
    assert event.url == "/index.php"


def test_old_request_object_is_read() -> None:
    record = {
        "time": "2012-12-02 13:11:52", "source": ["203.0.113.9", 3355], "pattern": "lfi", "filename": None,
        "request": {"method": "GET", "url": "/?file=../../etc/passwd", "body": "",
                    "header": {"Host": "192.0.2.10", "User-Agent": "Mozilla/4.0"}},
    }
    (event,) = ADAPTER.adapt(record, context())
    assert (event.kind, event.action, event.url, event.user_agent) == (
        Kind.EXPLOIT, "glastopf.GET", "http://192.0.2.10/?file=../../etc/passwd", "Mozilla/4.0",
    )


def test_time_is_sensor_local() -> None:
    event = adapt_one(zone=timezone(timedelta(hours=2)))
    assert event.ts == datetime(2026, 11, 27, 20, 42, 54, tzinfo=UTC)


def test_fetched_rfi_file_md5_is_kept() -> None:
    event = adapt_one(pattern="rfi", filename="1F3870BE274F6C49B3E31A0C6728957F")
    assert event.md5 == "1f3870be274f6c49b3e31a0c6728957f"
    assert adapt_one(pattern="rfi", filename="shell.txt").md5 is None


def test_explicit_dst_port_wins_over_the_default() -> None:
    assert adapt_one(dst_port=8080).dst_port == 8080


def test_bad_source_warns() -> None:
    event = adapt_one(source=["not-an-ip", "x"])
    assert (event.src_ip, event.src_port) == (None, None)
    assert event.warnings == ("source is not an IP address; dropped", "source port is not a port number; dropped")
    assert adapt_one(source=["198.51.100.7"]).src_port is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("GET / HTTP/1.1", "not a JSON object"),
        ({"pattern": "rfi", "source": ["1.2.3.4", 1]}, "not a glastopf event"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_is_specific() -> None:
    assert detect(BASE)
    assert not detect({"request_url": "/", "src_ip": "1.2.3.4"})
