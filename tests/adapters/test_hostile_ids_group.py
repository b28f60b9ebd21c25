"""Hostile input for suricata, snort-hpfeeds, suricata-hpfeeds, tpot and ecs: any JSON value,
and records shaped like each format (nested objects, dotted keys) with fuzzed values. The
adapters may only raise RecordRejected or RecordIgnored, every event must re-encode and
respect the limits (checked by the shared check_events), and detect must answer a bool
without raising, whatever it is given."""

from __future__ import annotations

from datetime import UTC, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honeyatlas.adapters import Adapter, generic, ids_hpfeeds, suricata
from tests.adapters.test_adapters_hostile import (
    check_group_adapter,
    hostile_text,
    json_values,
    plausible,
    raws,
    zones,
)

ADAPTERS = [suricata.ADAPTER, ids_hpfeeds.SNORT, ids_hpfeeds.SURICATA, generic.TPOT, generic.ECS]
QUICK = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def objects(keys: list[str], value: st.SearchStrategy[Any] = plausible) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, value))


def nested_or_dotted(paths: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A record with some of `paths` set to fuzzed values, each written flattened or nested."""

    def build(chosen: list[tuple[str, Any, bool]]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for path, value, dotted in chosen:
            if dotted:
                record[path] = value
                continue
            node = record
            *parents, leaf = path.split(".")
            for part in parents:
                child = node.get(part)
                node = node.setdefault(part, {}) if child is None or isinstance(child, dict) else {}
            node[leaf] = value
        return record

    return st.lists(st.tuples(st.sampled_from(paths), plausible, st.booleans()), max_size=10).map(build)


EVE_TYPES = ["alert", "http", "ssh", "fileinfo", "anomaly", "flow", "dns", "tls", "smb", "drop", "stats", "x", ""]
eve_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from(EVE_TYPES) | plausible},
    optional={
        **dict.fromkeys(["timestamp", "flow_id", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto"], plausible),
        "alert": objects(["action", "signature", "signature_id", "severity"])
        | st.fixed_dictionaries({"source": objects(["ip", "port"]), "target": objects(["ip", "port"])}),
        "http": objects(["hostname", "url", "http_port", "http_user_agent"])
        | objects(["hostname", "url"], st.sampled_from(["[::1]", "/", "http://x", "h:1", "", "\x00/"]) | hostile_text),
        "ssh": st.fixed_dictionaries({"client": objects(["proto_version", "software_version"])}) | plausible,
        "fileinfo": objects(["state", "sha256", "md5", "filename"]),
    },
)
hpfeeds_like = objects([
    "source_ip", "destination_ip", "source_port", "destination_port", "proto", "protocol", "signature",
    "signature_id", "priority", "severity", "action", "timestamp", "header", "classification", "sensor",
])
tpot_like = nested_or_dotted([
    "type", "@timestamp", "timestamp", "src_ip", "src_port", "dest_ip", "dst_port", "proto", "protocol",
    "connection.protocol", "eventid", "event_type", "status", "username", "password", "input", "url",
    "shasum", "md5", "alert.signature", "alert.severity", "t-pot_ip_ext",
])
ecs_like = nested_or_dotted([
    "@timestamp", "ecs.version", "event.kind", "event.category", "event.action", "event.outcome",
    "event.severity", "source.ip", "source.port", "destination.ip", "destination.port", "network.transport",
    "network.protocol", "user.name", "honeypot.password", "process.command_line", "url.full",
    "file.hash.sha256", "rule.name", "rule.id", "observer.product", "user_agent.original",
])
records = eve_like | hpfeeds_like | tpot_like | ecs_like


def check(adapter: Adapter, record: Any, zone: timezone, raw: str = "{}") -> None:
    check_group_adapter(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@QUICK
@given(record=json_values, zone=zones, raw=raws)
def test_any_json_value(adapter: Adapter, record: Any, zone: timezone, raw: str) -> None:
    check(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@QUICK
@given(record=records, zone=zones, raw=raws)
def test_records_shaped_like_the_group_formats(adapter: Adapter, record: dict[str, Any], zone: timezone, raw: str) -> None:
    check(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@pytest.mark.parametrize(
    "record",
    [
        {"event_type": "alert", "flow_id": 10**5000, "proto": 10**30, "alert": {"signature_id": 10**5000, "severity": 10**30}},
        {"event_type": "http", "http": {"hostname": "h" * 100_000, "url": "/" + "u" * 100_000}},
        {"source_ip": "1.2.3.4", "signature": None, "signature_id": -1, "priority": "²", "proto": "x" * 10_000},
        {"type": "x" * 10_000, "src_ip": "1.2.3.4", "@timestamp": "9999-12-31T23:59:59-12:00", "session": 10**5000},
        {"@timestamp": "2026-11-27T21:42:54Z", "source.ip": "1.2.3.4", "event": {"category": ["file"] * 10_000}},
        {"@timestamp": "2026-11-27T21:42:54Z", "source": {"ip": {"ip": "1.2.3.4"}}, "source.ip": None, "user.name": "\ud800"},
    ],
)
def test_known_edge_cases(adapter: Adapter, record: dict[str, Any]) -> None:
    check(adapter, record, UTC)
