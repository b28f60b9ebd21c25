"""The ecs adapter: ECS documents from honeypots, filebeat's Suricata module and Security Onion,
nested and flattened; then the category rules and the key-spelling tolerance."""

from __future__ import annotations

import json
from typing import Any

import pytest

from honeyatlas.adapters.generic import ECS, detect_ecs
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, check_golden, context, event_line
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "ecs.jsonl"
SENSOR = {"sensor": "elastic-01", "honeypot": "ecs"}
LOGIN: dict[str, Any] = {
    "@timestamp": "2026-11-27T21:42:54.275Z",
    "ecs": {"version": "8.11.0"},
    "event": {"category": ["authentication"], "action": "cowrie.login.failed", "outcome": "failure"},
    "source": {"ip": "198.51.100.7", "port": 55782},
    "destination": {"ip": "192.0.2.10", "port": 2222},
    "network": {"transport": "tcp", "protocol": "ssh"},
    "user": {"name": "root"},
    "honeypot": {"password": "123456", "session_id": "044e92401ecb"},
    "observer": {"product": "cowrie"},
}


def adapt(record: dict[str, Any]) -> Event:
    (event,) = ECS.adapt(record, context(json.dumps(record), **SENSOR))
    return event


def flattened(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(ECS, SAMPLE, **SENSOR)
    check_golden(lines, DATA / "golden" / "ecs.expected.jsonl")
    assert ignored == ["ecs event.kind metric: not attacker activity"]


def test_login_fields() -> None:
    event = adapt(LOGIN)
    assert (event.kind, event.outcome, event.action) == (Kind.LOGIN_ATTEMPT, Outcome.FAILURE, "cowrie.login.failed")
    assert (event.username, event.password, event.session) == ("root", "123456", "044e92401ecb")
    assert (event.transport, event.protocol, event.honeypot) == ("tcp", "ssh", "cowrie")
    assert event.warnings == ()


def test_nested_flattened_and_mixed_keys_give_the_same_event() -> None:
    nested = event_line(adapt(LOGIN))
    assert event_line(adapt(flattened(LOGIN))) == nested
    mixed = {key: value for key, value in flattened(LOGIN).items() if not key.startswith(("source.", "honeypot."))}
    mixed.update(source=LOGIN["source"], honeypot=LOGIN["honeypot"])
    assert event_line(adapt(mixed)) == nested


@pytest.mark.parametrize(
    "file_object",
    [{"hash": {"sha256": "a" * 64}}, {"hash.sha256": "a" * 64}],
)
def test_partly_flattened_paths(file_object: dict[str, Any]) -> None:
    record = {"@timestamp": "2026-11-27T21:43:30Z", "event": {"category": "file"}, "source.ip": "198.51.100.7", "file": file_object}
    assert adapt(record).sha256 == "a" * 64
    assert adapt({**record, "file": None, "file.hash": {"sha256": "a" * 64}}).sha256 == "a" * 64


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"category": ["network", "intrusion_detection"], "kind": "alert"}, Kind.IDS_ALERT),
        ({"category": "authentication"}, Kind.LOGIN_ATTEMPT),
        ({"category": ["process"]}, Kind.COMMAND),
        ({"category": ["file"], "type": ["creation"]}, Kind.FILE_DOWNLOAD),
        ({"category": ["file"], "action": "cowrie.session.file_upload"}, Kind.FILE_UPLOAD),
        ({"category": ["web"]}, Kind.WEB_REQUEST),
        ({"category": ["network"], "type": ["connection", "start"]}, Kind.CONNECTION),
        ({"category": ["network"], "kind": "alert"}, Kind.IDS_ALERT),  # Security Onion's Suricata alerts
        ({"category": ["session"]}, Kind.CONNECTION),
        ({}, Kind.CONNECTION),
    ],
)
def test_event_category_gives_the_kind(event: dict[str, Any], kind: Kind) -> None:
    record = {"@timestamp": "2026-11-27T21:46:09Z", "event": event, "source": {"ip": "203.0.113.77"}}
    assert adapt(record).kind is kind


def test_without_a_category_the_fields_decide() -> None:
    base = {"@timestamp": "2026-11-27T21:46:09Z", "source": {"ip": "203.0.113.77"}}
    assert adapt({**base, "user": {"name": "admin"}}).kind is Kind.LOGIN_ATTEMPT
    assert adapt({**base, "rule": {"name": "ET SCAN x"}}).kind is Kind.IDS_ALERT
    assert adapt({**base, "process": {"command_line": "id"}}).kind is Kind.COMMAND
    assert adapt({**base, "url": {"full": "http://x/"}}).kind is Kind.WEB_REQUEST


@pytest.mark.parametrize(("word", "outcome"), [("success", Outcome.SUCCESS), ("failure", Outcome.FAILURE), ("unknown", Outcome.UNKNOWN), ("SUCCESS", Outcome.UNKNOWN), (["success"], Outcome.UNKNOWN)])
def test_event_outcome(word: Any, outcome: Outcome) -> None:
    assert adapt({**LOGIN, "event": {**LOGIN["event"], "outcome": word}}).outcome is outcome


def test_rule_id_is_the_signature_only_without_a_name() -> None:
    base = {"@timestamp": "2026-11-27T21:46:09Z", "source": {"ip": "203.0.113.77"}, "event": {"kind": "alert"}}
    assert adapt({**base, "rule": {"id": "2029340"}}).signature == "2029340"
    assert adapt({**base, "rule": {"id": "2029340", "name": "ET SCAN Zmap"}}).signature == "ET SCAN Zmap"


def test_severity_outside_1_to_4_is_dropped_with_a_warning() -> None:
    record = {"@timestamp": "2026-11-27T21:46:09Z", "source": {"ip": "203.0.113.77"}, "event": {"kind": "alert", "severity": 73}}
    event = adapt(record)
    assert (event.severity, event.warnings) == (None, ("event.severity is not a severity 1-4; dropped",))


def test_client_and_server_stand_in_for_source_and_destination() -> None:
    record = {"@timestamp": "2026-11-27T21:46:09Z", "client": {"ip": "203.0.113.77", "port": 1}, "server": {"ip": "192.0.2.10", "port": 80}}
    event = adapt(record)
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("203.0.113.77", 1, "192.0.2.10", 80)


@pytest.mark.parametrize("kind", ["metric", "state", "pipeline_error"])
def test_non_activity_documents_are_ignored(kind: str) -> None:
    with pytest.raises(RecordIgnored):
        ECS.adapt({"@timestamp": "2026-11-27T21:48:00Z", "event": {"kind": kind}}, context(""))


def test_document_without_anything_usable_is_rejected() -> None:
    with pytest.raises(RecordRejected) as rejected:
        ECS.adapt({"@timestamp": "2026-11-27T21:48:00Z", "event": {"category": "web"}}, context(""))
    assert rejected.value.reason.startswith("nothing usable")


def test_detect_is_narrow() -> None:
    assert all(detect_ecs(record) for _, record in sample_records(SAMPLE))
    assert detect_ecs(flattened(LOGIN))
    assert not detect_ecs({"@timestamp": "x", "src_ip": "198.51.100.7", "event": {"kind": "alert"}})  # T-Pot-like
    assert not detect_ecs({"@timestamp": "x", "message": "hello"})
    assert not detect_ecs({"source": {"ip": "198.51.100.7"}})  # no @timestamp
