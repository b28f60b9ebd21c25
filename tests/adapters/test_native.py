"""The native `event` adapter: records already in the honeyatlas schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from honeyatlas.adapters import RecordContext, cowrie
from honeyatlas.adapters.native import ADAPTER, SERVER_FIELDS, NativeRecord
from honeyatlas.errors import RecordRejected
from honeyatlas.event import EVENT_FIELDS, FIELD_LIMITS, Flag, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, context

MINIMAL = {"ts": "2026-11-27T21:42:54.275704Z", "kind": "login_attempt"}


def adapt(**fields: Any):
    record = {**MINIMAL, **fields}
    (event,) = ADAPTER.adapt(record, context(json.dumps(record), sensor="edge-01", honeypot="custom"))
    return event


def reject(record: Any) -> str:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    return caught.value.reason


def test_input_fields_and_server_fields_cover_the_event_schema() -> None:
    given = set(NativeRecord.__struct_fields__)
    assert given.isdisjoint(SERVER_FIELDS)
    assert given | SERVER_FIELDS == set(EVENT_FIELDS)


def test_minimal_record() -> None:
    event = adapt()
    assert event.ts == datetime(2026, 11, 27, 21, 42, 54, 275704, tzinfo=UTC)
    assert event.kind is Kind.LOGIN_ATTEMPT
    assert event.outcome is Outcome.UNKNOWN
    assert (event.sensor, event.honeypot, event.ingest_ts) == ("edge-01", "custom", RECEIVED)
    assert event.warnings == () and event.flags == ()


def test_full_record_round_trips() -> None:
    event = adapt(
        action="ssh.auth", outcome="failure", src_ip="::ffff:198.51.100.7", src_port="2201",
        dst_ip="192.0.2.1", dst_port=22, transport="tcp", protocol="ssh", session="s1",
        username="root", password="toor", command="id", url="http://example.org/x",
        sha256="A" * 64, md5="b" * 32, signature="ET SCAN", severity=2,
        user_agent="curl/8", client_version="SSH-2.0-Go", warnings=["sender clock skewed"], v=1,
    )
    assert event.outcome is Outcome.FAILURE
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 2201, "192.0.2.1", 22)
    assert (event.username, event.password, event.command) == ("root", "toor", "id")
    assert (event.sha256, event.md5) == ("a" * 64, "b" * 32)
    assert (event.signature, event.severity) == ("ET SCAN", 2)
    assert (event.user_agent, event.client_version) == ("curl/8", "SSH-2.0-Go")
    assert event.warnings == ("sender clock skewed",)


def test_an_exported_event_is_accepted_back_unchanged() -> None:
    line = (DATA / "samples" / "cowrie.json").read_text(encoding="utf-8").splitlines()[3]
    (original,) = cowrie.ADAPTER.adapt(json.loads(line), context(line))
    exported = msgspec.json.decode(msgspec.json.encode(original))
    (again,) = ADAPTER.adapt(exported, context(line))
    assert again.warnings == ()
    assert msgspec.structs.replace(again, id=original.id) == original


def test_server_fields_are_ignored() -> None:
    event = adapt(
        id="attacker-chosen", ingest_ts="2000-01-01T00:00:00Z", sensor="someone-else", honeypot="x",
        src_geo={"country": "ZZ"}, dst_geo=None, flags=["demo"], raw="forged",
    )
    assert event.id != "attacker-chosen"
    assert (event.sensor, event.honeypot, event.ingest_ts) == ("edge-01", "custom", RECEIVED)
    assert event.src_geo is None and event.flags == ()
    assert event.raw != "forged"
    assert event.warnings == ()


def test_timestamp_without_zone_uses_context_zone() -> None:
    assert adapt(ts="2026-11-27 21:42:54").ts == datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)
    assert adapt(ts="2026-11-27T22:42:54+01:00").ts == datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)


def test_unknown_fields_are_listed_once_and_capped() -> None:
    names = [f"extra{number:02d}" for number in range(12)]
    event = adapt(**dict.fromkeys(names, 1))
    assert event.warnings == (
        "unknown fields ignored: " + ", ".join(names[:8]) + " and 4 more",
    )


def test_unusable_values_are_dropped_with_warnings() -> None:
    event = adapt(src_ip="not-an-ip", dst_port=70000, sha256="abc", md5="z" * 32, severity=1000)
    assert (event.src_ip, event.dst_port, event.sha256, event.md5, event.severity) == (None,) * 5
    assert event.warnings == (
        "severity is outside 1-4; dropped",
        "src_ip is not an IP address; dropped",
        "dst_port is outside 0-65535; dropped",
        "sha256 is not 64 hex digits; dropped",
        "md5 is not 32 hex digits; dropped",
    )


def test_text_is_cleaned_and_bounded() -> None:
    event = adapt(username="<img src=x onerror=alert(1)>", command="x\x1b[2J" + "y" * 10_000)
    assert event.username == "<img src=x onerror=alert(1)>"
    assert event.command is not None and event.command.startswith("x\\x1b[2J")
    assert len(event.command) == FIELD_LIMITS["command"]
    assert Flag.TRUNCATED in event.flags


def test_demo_context_flags_the_event() -> None:
    ctx = RecordContext(sensor="demo", honeypot="cowrie", received=RECEIVED, timezone=UTC, raw="{}", demo=True)
    (event,) = ADAPTER.adapt(dict(MINIMAL), ctx)
    assert event.flags == (Flag.DEMO,)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([MINIMAL], "not a JSON object"),
        ("{}", "not a JSON object"),
        ({"kind": "scan"}, "missing ts"),
        ({"ts": "2026-11-27T00:00:00Z"}, "missing kind"),
        ({**MINIMAL, "ts": "last tuesday"}, "invalid ts: not an ISO-8601 timestamp"),
        ({**MINIMAL, "ts": 1764279774}, "invalid ts: expected `str`, got `int`"),
        (
            {**MINIMAL, "kind": "<script>" * 50},
            "invalid kind: expected one of " + ", ".join(kind.value for kind in Kind),
        ),
        (
            {**MINIMAL, "outcome": "maybe"},
            "invalid outcome: expected one of success, failure, unknown",
        ),
        ({**MINIMAL, "username": 5}, "invalid username: expected `str | null`, got `int`"),
        ({**MINIMAL, "src_port": "ssh"}, "invalid src_port: expected `int | null`, got `str`"),
        ({**MINIMAL, "severity": 1.5}, "invalid severity: expected `int | null`, got `float`"),
        ({**MINIMAL, "warnings": "one"}, "invalid warnings: expected `array`, got `str`"),
        ({**MINIMAL, "warnings": [1]}, "invalid warnings: expected `str`, got `int`"),
        ({**MINIMAL, "v": 2}, "unsupported schema version 2"),
        ({**MINIMAL, "v": True}, "invalid v: expected `int | null`, got `bool`"),
        ({1: 2, **MINIMAL}, "field names must be text"),
        ({**MINIMAL, "kind": "\ud800"}, "text with a lone surrogate"),
        ({**MINIMAL, "src_port": "2\udfff"}, "text with a lone surrogate"),
        ({"\ud800": 1, **MINIMAL}, "text with a lone surrogate"),
    ],
)
def test_rejections_name_the_field_without_quoting_the_value(record: Any, reason: str) -> None:
    assert reject(record) == reason


def test_schema_version_one_is_accepted() -> None:
    assert adapt(v=1).v == 1
    assert adapt(v="1").v == 1


def test_adapter_is_named_event() -> None:
    assert ADAPTER.name == "event"
