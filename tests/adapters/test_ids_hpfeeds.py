"""The snort-hpfeeds and suricata-hpfeeds adapters: golden files built from the payload field
lists of MHN's emitters, then the spelling, time and severity rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from honeyatlas.adapters import Adapter, suricata
from honeyatlas.adapters.ids_hpfeeds import SNORT, SURICATA, detect_snort, detect_suricata
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden, context
from tests.adapters.sample_run import run_sample, sample_records

SENSOR = {"sensor": "mhn-ids-01", "honeypot": "snort"}
SNORT_BASE: dict[str, Any] = {
    "source_ip": "198.51.100.7", "destination_ip": "192.0.2.10", "source_port": 55781, "destination_port": 22,
    "protocol": "TCP", "signature": "ET SCAN Potential SSH Scan", "header": "1:2001219:20",
    "classification": "Attempted Information Leak", "priority": 2, "sensor": "6f1ab3c2-mhn-uuid",
}
SURICATA_BASE: dict[str, Any] = {
    "source_ip": "198.51.100.7", "destination_ip": "192.0.2.10", "source_port": 55781, "destination_port": 22,
    "proto": "TCP", "signature": "ET SCAN Potential SSH Scan", "signature_id": 2001219, "signature_rev": 20,
    "action": "allowed", "sensor": "0b7c6e1a-mhn-uuid",
}


def adapt_one(adapter: Adapter, base: dict[str, Any], **fields: Any) -> Event:
    record = {key: value for key, value in {**base, **fields}.items() if value is not None}
    (event,) = adapter.adapt(record, context(json.dumps(record), **SENSOR))
    return event


@pytest.mark.parametrize("adapter", [SNORT, SURICATA], ids=lambda adapter: adapter.name)
def test_sample_matches_golden_file(adapter: Adapter) -> None:
    lines, ignored = run_sample(adapter, DATA / "samples" / f"{adapter.name}.jsonl", **SENSOR)
    check_golden(lines, DATA / "golden" / f"{adapter.name}.expected.jsonl")
    assert ignored == []


@pytest.mark.parametrize("adapter", [SNORT, SURICATA], ids=lambda adapter: adapter.name)
def test_every_sample_is_an_alert_at_receive_time_without_warnings(adapter: Adapter) -> None:
    for line, record in sample_records(DATA / "samples" / f"{adapter.name}.jsonl"):
        (event,) = adapter.adapt(record, context(line, **SENSOR))
        assert (event.kind, event.ts, event.warnings) == (Kind.IDS_ALERT, RECEIVED, ())
        assert event.sensor == "mhn-ids-01"  # never the payload's MHN uuid
        assert event.action == ("snort.alert" if adapter is SNORT else "suricata.alert")


@pytest.mark.parametrize(("adapter", "base"), [(SNORT, SNORT_BASE), (SURICATA, SURICATA_BASE)], ids=["snort", "suricata"])
@pytest.mark.parametrize(
    ("spelling", "transport"),
    [({"proto": "TCP", "protocol": None}, "tcp"), ({"protocol": "UDP", "proto": None}, "udp"),
     ({"proto": 1, "protocol": None}, "icmp"), ({"proto": None, "protocol": None}, None)],
)
def test_proto_and_protocol_are_both_accepted(adapter: Adapter, base: dict[str, Any], spelling: dict[str, Any], transport: str | None) -> None:
    assert adapt_one(adapter, base, **spelling).transport == transport


@pytest.mark.parametrize(("priority", "severity"), [(1, 1), ("2", 2), (4, 4), (5, None), (0, None), ("high", None)])
def test_priority_is_the_severity(priority: Any, severity: int | None) -> None:
    event = adapt_one(SNORT, SNORT_BASE, priority=priority)
    assert event.severity == severity
    assert event.warnings == (() if severity else ("priority is not a severity 1-4; dropped",))


def test_suricata_payload_may_name_its_severity_severity() -> None:
    assert adapt_one(SURICATA, SURICATA_BASE, severity=3).severity == 3
    assert adapt_one(SURICATA, SURICATA_BASE, severity=3, priority=1).severity == 1


@pytest.mark.parametrize(("action", "outcome"), [("allowed", Outcome.UNKNOWN), ("blocked", Outcome.FAILURE), (None, Outcome.UNKNOWN)])
def test_suricata_action_gives_the_outcome(action: str | None, outcome: Outcome) -> None:
    assert adapt_one(SURICATA, SURICATA_BASE, action=action).outcome is outcome


def test_a_timestamp_when_present_is_used_and_a_bad_one_is_warned_about() -> None:
    event = adapt_one(SNORT, SNORT_BASE, timestamp="2026-11-27T22:40:02+0100")
    assert event.ts.isoformat() == "2026-11-27T21:40:02+00:00"
    event = adapt_one(SNORT, SNORT_BASE, timestamp="yesterday")
    assert (event.ts, event.warnings) == (RECEIVED, ("timestamp is not a time; receive time used",))


def test_missing_signature_names_the_rule_id() -> None:
    assert adapt_one(SURICATA, SURICATA_BASE, signature=None).signature == "sid:2001219"
    assert adapt_one(SURICATA, SURICATA_BASE, signature=None, signature_id="2001219").signature == "sid:2001219"
    assert adapt_one(SNORT, SNORT_BASE, signature=None).signature is None


def test_icmp_alert_has_no_ports_and_no_warning() -> None:
    event = adapt_one(SNORT, SNORT_BASE, source_port=None, destination_port=None, protocol="ICMP")
    assert (event.src_port, event.dst_port, event.transport, event.warnings) == (None, None, "icmp", ())


def test_mapped_addresses_and_string_ports() -> None:
    event = adapt_one(SNORT, SNORT_BASE, source_ip="::ffff:198.51.100.7", source_port="55781", destination_ip="999.1.1.1")
    assert (event.src_ip, event.src_port, event.dst_ip) == ("198.51.100.7", 55781, None)
    assert event.warnings == ("destination_ip is not an IP address; dropped",)


@pytest.mark.parametrize("adapter", [SNORT, SURICATA], ids=lambda adapter: adapter.name)
@pytest.mark.parametrize(("record", "reason"), [("text", "not a JSON object"), ({"priority": 1}, "no source_ip and no signature")])
def test_rejections(adapter: Adapter, record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as rejected:
        adapter.adapt(record, context(""))
    assert reason in rejected.value.reason


def test_hpfeeds_alert_and_eve_alert_come_out_the_same() -> None:
    eve = {
        "timestamp": "2026-11-28T00:00:00+0000", "flow_id": 1, "event_type": "alert", "src_ip": "198.51.100.7",
        "src_port": 55781, "dest_ip": "192.0.2.10", "dest_port": 22, "proto": "TCP",
        "alert": {"action": "allowed", "signature_id": 2001219, "signature": "ET SCAN Potential SSH Scan", "severity": 2},
    }
    (from_eve,) = suricata.ADAPTER.adapt(eve, context("", **SENSOR))
    from_hpfeeds = adapt_one(SURICATA, SURICATA_BASE, priority=2)
    for name in ("ts", "kind", "action", "outcome", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "signature", "severity"):
        assert getattr(from_eve, name) == getattr(from_hpfeeds, name), name


def test_detect_tells_the_two_channels_apart() -> None:
    snort_records = [record for _, record in sample_records(DATA / "samples" / "snort-hpfeeds.jsonl")]
    suricata_records = [record for _, record in sample_records(DATA / "samples" / "suricata-hpfeeds.jsonl")]
    assert all(detect_snort(r) and not detect_suricata(r) for r in snort_records)
    assert all(detect_suricata(r) and not detect_snort(r) for r in suricata_records)
    wordpot = {"source_ip": "198.51.100.7", "source_port": 1, "dest_ip": "192.0.2.10", "dest_port": 80, "url": "/wp-admin"}
    assert not detect_snort(wordpot) and not detect_suricata(wordpot)
    assert not detect_snort(None) and not detect_suricata([])
