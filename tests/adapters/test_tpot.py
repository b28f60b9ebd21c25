"""The tpot adapter: records of several honeypots as T-Pot's logstash writes them, then the
inference rules one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from honeyatlas.adapters.generic import TPOT, detect_tpot
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, check_golden, context
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "tpot.jsonl"
SENSOR = {"sensor": "tpot-fra-01", "honeypot": "tpot"}
BASE: dict[str, Any] = {
    "@timestamp": "2026-11-27T21:42:54.275Z", "type": "Cowrie", "src_ip": "198.51.100.7", "src_port": 55782,
    "dest_ip": "10.0.0.4", "dest_port": 22, "t-pot_ip_ext": "192.0.2.10", "t-pot_hostname": "tpot-fra-01",
}


def adapt_one(**fields: Any) -> Event:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    (event,) = TPOT.adapt(record, context(json.dumps(record), **SENSOR))
    return event


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(TPOT, SAMPLE, **SENSOR)
    check_golden(lines, DATA / "golden" / "tpot.expected.jsonl")
    assert ignored == ["t-pot stats record: sensor counters, not attacker activity"]


def test_sample_honeypot_comes_from_type_and_nothing_is_warned() -> None:
    for line, record in sample_records(SAMPLE):
        if record.get("event_type") == "stats":
            continue
        (event,) = TPOT.adapt(record, context(line, **SENSOR))
        assert event.honeypot == record["type"].lower()
        assert event.sensor == "tpot-fra-01"
        assert event.warnings == ()


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"alert": {"signature": "ET SCAN x", "severity": 2}, "username": "root"}, Kind.IDS_ALERT),
        ({"username": "root", "input": "id"}, Kind.LOGIN_ATTEMPT),
        ({"password": "123456"}, Kind.LOGIN_ATTEMPT),
        ({"input": "uname -a", "url": "http://x/y"}, Kind.COMMAND),
        ({"url": "http://203.0.113.5/x86", "shasum": "a" * 64}, Kind.FILE_DOWNLOAD),
        ({"md5": "b" * 32}, Kind.FILE_DOWNLOAD),
        ({"eventid": "cowrie.session.file_upload", "shasum": "a" * 64}, Kind.FILE_UPLOAD),
        ({"eventid": "cowrie.session.file_download.failed", "url": "http://x/y"}, Kind.FILE_DOWNLOAD),
        ({"url": "/wp-login.php"}, Kind.WEB_REQUEST),
        ({"os": "Linux 3.x"}, Kind.CONNECTION),
    ],
)
def test_kind_is_inferred_from_what_is_present(fields: dict[str, Any], kind: Kind) -> None:
    assert adapt_one(**fields).kind is kind


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"eventid": "cowrie.login.success", "username": "a"}, Outcome.SUCCESS),
        ({"eventid": "cowrie.login.failed", "username": "a"}, Outcome.FAILURE),
        ({"status": "failed", "username": "a"}, Outcome.FAILURE),
        ({"status": "Success", "username": "a"}, Outcome.SUCCESS),
        ({"username": "a"}, Outcome.UNKNOWN),
        ({"url": "http://x", "shasum": "a" * 64}, Outcome.SUCCESS),
        ({"eventid": "cowrie.session.file_download.failed", "url": "http://x"}, Outcome.FAILURE),
    ],
)
def test_outcome_rules(fields: dict[str, Any], outcome: Outcome) -> None:
    assert adapt_one(**fields).outcome is outcome


def test_suricata_in_tpot_keeps_the_suricata_action_and_alert_fields() -> None:
    event = adapt_one(type="Suricata", event_type="alert", proto="TCP", app_proto="http",
                      alert={"signature": "ET EXPLOIT x", "severity": "1", "cve_id": "CVE-2014-6271"})
    assert (event.honeypot, event.action, event.kind) == ("suricata", "suricata.alert", Kind.IDS_ALERT)
    assert (event.signature, event.severity, event.transport, event.protocol) == ("ET EXPLOIT x", 1, "tcp", "http")


def test_destination_falls_back_to_the_external_address() -> None:
    assert adapt_one(dest_ip=None).dst_ip == "192.0.2.10"
    assert adapt_one(dest_ip=None, dst_ip="192.0.2.99").dst_ip == "192.0.2.99"


def test_dionaea_service_names_become_protocols() -> None:
    event = adapt_one(type="Dionaea", connection={"protocol": "mssqld", "transport": "tcp", "type": "accept"})
    assert (event.protocol, event.transport) == ("mssql", "tcp")


def test_transport_is_tcp_when_the_protocol_runs_only_over_tcp() -> None:
    assert adapt_one(protocol="ssh").transport == "tcp"
    assert adapt_one(protocol="sip").transport is None  # sip runs over udp too
    assert adapt_one(protocol="ssh", proto="UDP").transport == "udp"  # the record's own word wins


def test_timestamp_fallback_and_naive_time() -> None:
    event = adapt_one(**{"@timestamp": None, "timestamp": "2026-11-27T21:45:12.200114"})
    assert event.ts.isoformat() == "2026-11-27T21:45:12.200114+00:00"
    event = adapt_one(**{"@timestamp": {"$date": 1}})
    assert event.warnings == ("timestamp is not a time; dropped", "no usable timestamp; receive time used")


def test_missing_type_keeps_the_sensor_type_and_says_so() -> None:
    event = adapt_one(type=None)
    assert event.honeypot == "tpot"
    assert event.warnings == ("no honeypot type; the sensor's type used",)


def test_bad_values_are_dropped_with_warnings_naming_the_path() -> None:
    event = adapt_one(src_port="²", dest_ip="10.0.0.999", input={"cmd": "id"})
    assert (event.src_port, event.dst_ip, event.command) == (None, None, None)
    assert event.warnings == (
        "src_port is not a port number; dropped",
        "dest_ip is not an IP address; dropped",
        "input is not text; dropped",
    )


def test_stats_are_ignored_and_empty_records_rejected() -> None:
    with pytest.raises(RecordIgnored):
        TPOT.adapt({"type": "Suricata", "event_type": "stats", "t-pot_ip_ext": "192.0.2.10"}, context(""))
    with pytest.raises(RecordRejected) as rejected:
        TPOT.adapt({"type": "Cowrie", "@timestamp": "2026-11-27T21:42:54Z"}, context(""))
    assert rejected.value.reason.startswith("nothing usable")
    with pytest.raises(RecordRejected):
        TPOT.adapt(["Cowrie"], context(""))


def test_detect_needs_type_and_a_tpot_mark() -> None:
    assert all(detect_tpot(record) for _, record in sample_records(SAMPLE))
    assert detect_tpot({"type": "Cowrie", "src_ip": "198.51.100.7", "@timestamp": "x"})
    # a plain honeypot record (qeeqbox, cowrie, EVE) has src_ip but no T-Pot label
    assert not detect_tpot({"src_ip": "198.51.100.7", "timestamp": "x", "action": "login"})
    assert not detect_tpot({"type": "Cowrie", "src_ip": "198.51.100.7"})
    assert not detect_tpot({"type": 3, "t-pot_ip_ext": "x"})
