"""The suricata EVE adapter: the golden file (documented EVE examples plus realistic records
of a sensor in front of honeypots), then the direction, outcome and tolerance rules one by one.
Also: format `auto` sends every sample of this group's formats to its own adapter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from honeyatlas.adapters import cowrie, generic, ids_hpfeeds, native, suricata
from honeyatlas.adapters.detect import AutoDetector
from honeyatlas.adapters.suricata import ADAPTER, http_url
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, check_golden, context
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "suricata.jsonl"
GOLDEN = DATA / "golden" / "suricata.expected.jsonl"
SENSOR = {"sensor": "lab-ids-01", "honeypot": "suricata"}
BASE: dict[str, Any] = {
    "timestamp": "2026-11-27T21:40:02.118302+0000",
    "flow_id": 1183464291027465,
    "event_type": "alert",
    "src_ip": "198.51.100.7",
    "src_port": 55781,
    "dest_ip": "192.0.2.10",
    "dest_port": 22,
    "proto": "TCP",
    "alert": {"action": "allowed", "gid": 1, "signature_id": 2001219, "rev": 20,
              "signature": "ET SCAN Potential SSH Scan", "severity": 2},
}


def adapt_one(**fields: Any) -> Event:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    (event,) = ADAPTER.adapt(record, context(json.dumps(record), **SENSOR))
    return event


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(ADAPTER, SAMPLE, **SENSOR)
    check_golden(lines, GOLDEN)
    assert ignored == ["suricata stats record: engine counters, not attacker activity"]


def test_sample_warns_only_about_the_unknown_event_type() -> None:
    for line, record in sample_records(SAMPLE):
        if record["event_type"] == "stats":
            continue
        (event,) = ADAPTER.adapt(record, context(line, **SENSOR))
        assert event.sensor == "lab-ids-01" and event.honeypot == "suricata"
        assert event.action == f"suricata.{record['event_type']}"
        expected = ("unknown suricata event_type; kept as kind other",) if record["event_type"] == "websocket" else ()
        assert event.warnings == expected


def test_alert_fields_and_numeric_offset_timestamp() -> None:
    event = adapt_one(timestamp="2017-04-07T22:24:37.251547+0100")
    assert (event.kind, event.outcome) == (Kind.IDS_ALERT, Outcome.UNKNOWN)
    assert (event.signature, event.severity) == ("ET SCAN Potential SSH Scan", 2)
    assert (event.transport, event.session) == ("tcp", "1183464291027465")
    assert event.ts.isoformat() == "2017-04-07T21:24:37.251547+00:00"


def test_timestamp_without_zone_uses_the_context_zone() -> None:
    event = adapt_one(timestamp="2026-11-27T21:40:02.118302")
    assert event.ts.isoformat() == "2026-11-27T21:40:02.118302+00:00"
    assert event.warnings == ()


def test_alert_source_and_target_give_the_direction() -> None:
    # a response-side alert: the packet went honeypot -> attacker, the rule says who attacked whom
    alert = {**BASE["alert"], "source": {"ip": "203.0.113.45", "port": 41822}, "target": {"ip": "192.0.2.10", "port": 8080}}
    event = adapt_one(src_ip="192.0.2.10", src_port=8080, dest_ip="203.0.113.45", dest_port=41822, alert=alert)
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("203.0.113.45", 41822, "192.0.2.10", 8080)


def test_alert_source_alone_does_not_override_the_record_direction() -> None:
    event = adapt_one(alert={**BASE["alert"], "source": {"ip": "203.0.113.45"}})
    assert (event.src_ip, event.dst_ip) == ("198.51.100.7", "192.0.2.10")


def test_alert_target_without_port_for_icmp() -> None:
    alert = {**BASE["alert"], "source": {"ip": "203.0.113.45"}, "target": {"ip": "192.0.2.10"}}
    event = adapt_one(proto="ICMP", src_port=None, dest_port=None, alert=alert)
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("203.0.113.45", None, "192.0.2.10", None)
    assert event.transport == "icmp" and event.warnings == ()


@pytest.mark.parametrize(("action", "outcome"), [("allowed", Outcome.UNKNOWN), ("blocked", Outcome.FAILURE), (None, Outcome.UNKNOWN)])
def test_alert_action_gives_the_outcome(action: str | None, outcome: Outcome) -> None:
    alert = {key: value for key, value in {**BASE["alert"], "action": action}.items() if value is not None}
    assert adapt_one(alert=alert).outcome is outcome


@pytest.mark.parametrize(("severity", "expected"), [(1, 1), (4, 4), ("3", 3), (0, None), (5, None), (255, None), (2.5, None), (True, None)])
def test_severity_outside_1_to_4_is_dropped_with_a_warning(severity: Any, expected: int | None) -> None:
    event = adapt_one(alert={**BASE["alert"], "severity": severity})
    assert event.severity == expected
    assert event.warnings == (() if expected else ("alert.severity is not a severity 1-4; dropped",))


def test_alert_without_signature_names_the_rule_id() -> None:
    alert = {key: value for key, value in BASE["alert"].items() if key != "signature"}
    assert adapt_one(alert=alert).signature == "sid:2001219"


@pytest.mark.parametrize(("proto", "transport"), [("UDP", "udp"), ("IPv6-ICMP", "icmp"), ("ICMP", "icmp"), ("047", "47"), (17, "udp"), ("SCTP", "sctp"), ([], None)])
def test_proto_is_a_lowercase_transport(proto: Any, transport: str | None) -> None:
    assert adapt_one(proto=proto).transport == transport


@pytest.mark.parametrize(("app_proto", "protocol"), [("http", "http"), ("HTTP2", "http2"), ("failed", None), ("unknown", None), ("", None)])
def test_app_proto_is_the_protocol_unless_detection_failed(app_proto: str, protocol: str | None) -> None:
    assert adapt_one(app_proto=app_proto).protocol == protocol


def test_application_record_without_app_proto_is_named_by_its_type() -> None:
    event = adapt_one(event_type="tls", alert=None, tls={"sni": "x", "version": "TLS 1.2"})
    assert (event.kind, event.protocol) == (Kind.CONNECTION, "tls")


@pytest.mark.parametrize(
    ("http", "url"),
    [
        ({"hostname": "example.net", "url": "/a?b=1"}, "http://example.net/a?b=1"),
        ({"hostname": "example.net", "http_port": 8080, "url": "/"}, "http://example.net:8080/"),
        ({"hostname": "2001:db8::10", "url": "/x"}, "http://[2001:db8::10]/x"),
        ({"hostname": "proxy", "url": "http://203.0.113.5/bins/x86"}, "http://203.0.113.5/bins/x86"),
        ({"hostname": "203.0.113.5", "url": "203.0.113.5:443"}, "203.0.113.5:443"),  # CONNECT
        ({"url": "/index.html"}, "/index.html"),
        ({"hostname": "example.net"}, "http://example.net"),
        ({"hostname": "example.net", "url": ["/"]}, "http://example.net"),
        ({}, None),
    ],
)
def test_http_url_from_host_port_and_path(http: dict[str, Any], url: str | None) -> None:
    assert http_url(http) == url


def test_http_record_is_a_web_request_with_user_agent() -> None:
    http = {"hostname": "honeypot.example.net", "url": "/wp-login.php", "http_user_agent": "curl/8.5.0", "http_method": "POST"}
    event = adapt_one(event_type="http", alert=None, http=http)
    assert event.kind is Kind.WEB_REQUEST
    assert (event.url, event.user_agent, event.signature) == ("http://honeypot.example.net/wp-login.php", "curl/8.5.0", None)


def test_ssh_banner_is_written_like_cowries() -> None:
    ssh = {"client": {"proto_version": "2.0", "software_version": "libssh_0.9.6"}, "server": {"software_version": "OpenSSH_8.4"}}
    event = adapt_one(event_type="ssh", alert=None, ssh=ssh)
    assert (event.kind, event.client_version, event.protocol) == (Kind.CONNECTION, "SSH-2.0-libssh_0.9.6", "ssh")
    event = adapt_one(event_type="ssh", alert=None, ssh={"client": {"software_version": "Go"}})
    assert event.client_version == "Go"


def test_fileinfo_hashes_and_state() -> None:
    info = {"filename": "/x", "state": "CLOSED", "sha256": "FA7DE36AC4B90BFA2599B465EA8564CABEFAD7F3BA1D4657DD0899ADAB70B24E", "md5": "nope"}
    event = adapt_one(event_type="fileinfo", alert=None, fileinfo=info)
    assert (event.kind, event.outcome) == (Kind.FILE_DOWNLOAD, Outcome.SUCCESS)
    assert event.sha256 == "fa7de36ac4b90bfa2599b465ea8564cabefad7f3ba1d4657dd0899adab70b24e"
    assert event.md5 is None
    assert event.warnings == ("fileinfo.md5 is not 32 hex digits; dropped",)
    assert adapt_one(event_type="fileinfo", alert=None, fileinfo={"state": "OPEN"}).outcome is Outcome.UNKNOWN


def test_flow_anomaly_dns_drop_kinds() -> None:
    assert adapt_one(event_type="flow", alert=None, flow={"state": "closed"}).kind is Kind.CONNECTION
    assert adapt_one(event_type="anomaly", alert=None, anomaly={"type": "decode"}).kind is Kind.OTHER
    assert adapt_one(event_type="dns", alert=None).kind is Kind.OTHER
    drop = adapt_one(event_type="drop", alert=None)
    assert (drop.kind, drop.outcome) == (Kind.OTHER, Outcome.FAILURE)


def test_unknown_event_type_is_other_with_a_warning() -> None:
    event = adapt_one(event_type="quantum", alert=None)
    assert (event.kind, event.action) == (Kind.OTHER, "suricata.quantum")
    assert event.warnings == ("unknown suricata event_type; kept as kind other",)


def test_stats_record_is_ignored_not_rejected() -> None:
    with pytest.raises(RecordIgnored):
        ADAPTER.adapt({"timestamp": "2026-11-27T21:49:00+0000", "event_type": "stats", "stats": {}}, context(""))


@pytest.mark.parametrize(
    ("record", "reason"),
    [([1], "not a JSON object"), ({"timestamp": "x"}, "missing event_type"), ({"event_type": 3}, "not a Suricata EVE record"), ({"event_type": ""}, "not a Suricata EVE record")],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as rejected:
        ADAPTER.adapt(record, context(""))
    assert rejected.value.reason == reason


def test_mapped_ipv4_and_bad_values_are_warnings() -> None:
    event = adapt_one(src_ip="::ffff:198.51.100.7", dest_ip="not-an-ip", src_port="55781", dest_port=70000)
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 55781, None, None)
    assert event.warnings == ("dest_ip is not an IP address; dropped", "dest_port is not a port number; dropped")


@pytest.mark.parametrize("flow_id", [-1, 2**64, True, "12", 1.5])
def test_odd_flow_id_gives_no_session(flow_id: Any) -> None:
    assert adapt_one(flow_id=flow_id).session is None


def test_detect_claims_eve_and_nothing_else() -> None:
    assert all(suricata.detect(record) for _, record in sample_records(SAMPLE))
    tpot_alert = next(r for _, r in sample_records(DATA / "samples" / "tpot.jsonl") if r.get("event_type") == "alert")
    assert not suricata.detect(tpot_alert)
    for _, record in sample_records(DATA / "samples" / "cowrie.json"):
        assert not suricata.detect(record)
    assert not suricata.detect({"event_type": "alert"}) and not suricata.detect("x")


GROUP = {
    "suricata": suricata.ADAPTER, "snort-hpfeeds": ids_hpfeeds.SNORT, "suricata-hpfeeds": ids_hpfeeds.SURICATA,
    "tpot": generic.TPOT, "ecs": generic.ECS,
}


@pytest.mark.parametrize("name", sorted(GROUP))
def test_auto_picks_the_own_format_for_every_sample(name: str) -> None:
    """A T-Pot record of a honeypot that has its own adapter goes to that adapter (specific
    formats first); every other record of these samples goes to its own format."""
    detector = AutoDetector({**GROUP, "cowrie": cowrie.ADAPTER, "event": native.ADAPTER})
    for _, record in sample_records(DATA / "samples" / f"{name}.jsonl"):
        expected = {name, record["type"].lower()} if name == "tpot" else {name}
        assert detector.pick(record).name in expected, record
