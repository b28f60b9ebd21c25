"""Hostile input for every adapter here: any JSON value, and records shaped like real ones with
fuzzed values. The only exception allowed out is RecordRejected, and every event returned
must re-encode and respect the field limits."""

from __future__ import annotations

import ipaddress
from datetime import UTC, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honeyatlas.adapters import Adapter, RecordContext, cowrie, native
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import (
    EVENT_FIELDS,
    FIELD_LIMITS,
    MAX_WARNINGS,
    RAW_LIMIT_BYTES,
    Event,
    Kind,
    Outcome,
)
from tests.adapters.golden import RECEIVED

ADAPTERS = [cowrie.ADAPTER, native.ADAPTER]
TEXT_FIELDS = [name for name in native.NativeRecord.__struct_fields__ if name in FIELD_LIMITS]
HOSTILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COWRIE_IDS = [
    "cowrie.session.connect", "cowrie.session.closed", "cowrie.client.version", "cowrie.client.kex",
    "cowrie.client.fingerprint", "cowrie.login.success", "cowrie.login.failed", "cowrie.command.input",
    "cowrie.command.failed", "cowrie.command.chpasswd", "cowrie.session.input",
    "cowrie.session.file_download", "cowrie.session.file_download.failed", "cowrie.session.file_upload",
    "cowrie.telnet.exploit_attempt", "cowrie.telnet.exploit_success", "cowrie.direct-tcpip.request",
    "cowrie.direct-tcpip.data", "cowrie.reversedns.forward", "cowrie.log.closed", "cowrie.", "cowrie.x.y",
]
COWRIE_KEYS = [
    "timestamp", "session", "protocol", "src_ip", "src_port", "dst_ip", "dst_port", "sensor", "username",
    "password", "fingerprint", "input", "version", "url", "shasum", "cve", "attempted_command",
    "duration", "duration_ms", "data", "orig_ip",
]

# Control bytes, C1 controls and lone surrogates: what a stdlib json.loads can hand over.
hostile_text = st.text(
    alphabet=st.characters(max_codepoint=0x9F) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=24,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | hostile_text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Values that get past type checks and reach the parsers: edge-of-range numbers, near-valid
# addresses and timestamps, digits that are not ASCII, long text.
plausible = st.one_of(
    json_values,
    hostile_text,
    st.integers(min_value=-2, max_value=70_000) | st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([
        "::ffff:127.0.0.1", "[::1]", "fe80::1%eth0", "256.0.0.1", "1.2.3.4", "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-12:00", "2026-11-27T21:42:54Z", "2026-11-27 21:42:54", "²", "١٢", "65536",
        "b'SSH-2.0-x'", "b'", "truncated", "\x1b[2J", "\ud800", "A" * 20_000,
    ]),
)
cowrie_like = st.fixed_dictionaries(
    {"eventid": st.sampled_from(COWRIE_IDS)},
    optional={key: plausible for key in COWRIE_KEYS},
)
# Either every field fuzzed (mostly rejected on type), or the right types with hostile values.
native_fuzzed = st.fixed_dictionaries(
    {"ts": plausible, "kind": plausible | st.sampled_from(list(Kind))},
    optional={name: plausible for name in EVENT_FIELDS if name not in ("ts", "kind")},
)
some_text = st.none() | hostile_text | st.text(max_size=40) | st.just("\x1b" * 5000)
native_typed = st.fixed_dictionaries(
    {
        "ts": st.sampled_from(["2026-11-27T21:42:54Z", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00"]),
        "kind": st.sampled_from(list(Kind)),
    },
    optional={
        **dict.fromkeys(TEXT_FIELDS, some_text),
        "outcome": st.none() | st.sampled_from(list(Outcome)),
        "src_ip": some_text | st.sampled_from(["::ffff:10.0.0.1", "2001:db8::1", "1.2.3.4"]),
        "dst_ip": some_text,
        "src_port": st.none() | st.integers(min_value=-10, max_value=70_000) | st.sampled_from(["22", "²"]),
        "dst_port": st.none() | st.integers(),
        "sha256": some_text | st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64),
        "md5": some_text,
        "severity": st.none() | st.integers(),
        "warnings": st.lists(hostile_text | st.just("x" * 1000), max_size=24),
        "v": st.sampled_from([1, "1", None]),
        "extra": plausible,
        "truncated": plausible,
    },
)
native_like = native_fuzzed | native_typed
zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
# The raw text is the source's business; the adapter only has to cap it.
raws = st.text(max_size=20) | st.just("r" * (RAW_LIMIT_BYTES + 1))


def context_for(zone: timezone, raw: str) -> RecordContext:
    return RecordContext(sensor="fuzz-sensor", honeypot="cowrie", received=RECEIVED, timezone=zone, raw=raw)


def check_events(adapter: Adapter, record: Any, zone: timezone, raw: str = "{}") -> None:
    try:
        events = adapter.adapt(record, context_for(zone, raw))
    except RecordRejected as rejected:
        assert rejected.reason and len(rejected.reason) <= 400
        return
    for event in events:
        assert isinstance(event, Event)
        assert msgspec.json.decode(msgspec.json.encode(event), type=Event) == event
        for name, limit in FIELD_LIMITS.items():
            value = getattr(event, name, None)
            assert value is None or (isinstance(value, str) and len(value) <= limit), name
        assert len(event.warnings) <= MAX_WARNINGS
        assert all(len(warning) <= FIELD_LIMITS["warning"] for warning in event.warnings)
        assert event.raw is not None and len(event.raw) <= RAW_LIMIT_BYTES
        assert event.sensor == "fuzz-sensor"
        assert event.ts.tzinfo is not None
        for address in (event.src_ip, event.dst_ip):
            assert address is None or ipaddress.ip_address(address)
        for port in (event.src_port, event.dst_port):
            assert port is None or 0 <= port <= 65535
        for digest, length in ((event.sha256, 64), (event.md5, 32)):
            assert digest is None or len(digest) == length


def check_group_adapter(adapter: Adapter, record: Any, zone: timezone, raw: str = "{}", *,
                        require_detect: bool = True) -> None:
    """check_events for adapters that may also ignore a record (valid, but not an attack);
    with `require_detect`, the adapter has a detect function that answers a plain bool."""
    try:
        check_events(adapter, record, zone, raw)
    except RecordIgnored as ignored:
        assert ignored.reason and len(ignored.reason) <= 400
    if require_detect:
        assert adapter.detect is not None and adapter.detect(record) in (True, False)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@HOSTILE
@given(record=json_values, zone=zones, raw=raws)
def test_any_json_value(adapter: Adapter, record: Any, zone: timezone, raw: str) -> None:
    check_events(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@HOSTILE
@given(record=cowrie_like | native_like, zone=zones, raw=raws)
def test_records_shaped_like_real_ones(adapter: Adapter, record: dict[str, Any], zone: timezone, raw: str) -> None:
    check_events(adapter, record, zone, raw)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
@pytest.mark.parametrize(
    "record",
    [
        {"eventid": "cowrie.session.connect", "src_port": "²", "timestamp": "0001-01-01T00:00:00+01:00"},
        {"eventid": "cowrie.command.input", "input": 10**5000},
        {"ts": "9999-12-31T23:59:59-12:00", "kind": "scan"},
        {"ts": "2026-11-27T21:42:54Z", "kind": "scan", "src_port": 10**30, "severity": -(10**30)},
        {"ts": "2026-11-27T21:42:54Z", "kind": "scan", "warnings": ["w"] * 10_000},
    ],
)
def test_known_edge_cases(adapter: Adapter, record: dict[str, Any]) -> None:
    check_events(adapter, record, UTC)
