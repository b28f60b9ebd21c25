"""The conpot adapter: golden files from real conpot 0.6.0 output (its modbus, s7comm and http
servers on 127.0.0.1 hit by a modbus client, raw S7 packets and curl; the hpfeeds payloads are
what its HPFriendsLogger.log() was handed, and the JSON log what JsonLogger wrote), the older
payload from the mnemosyne fixture, then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.conpot import ADAPTER, MAX_PDUS, detect
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind
from tests.adapters.golden import DATA, RECEIVED, check_golden, context
from tests.adapters.sample_run import run_sample, sample_records

SAMPLES = DATA / "samples"
GOLDEN = DATA / "golden"
# conpot.events as the mnemosyne test fixture has it (older conpot: a list of PDUs, session_id).
MNEMOSYNE = {
    "data_type": "modbus",
    "data": [{"request_pdu": "0300000002", "function_code": 3, "slave_id": 1, "response_pdu": "030400000001"}],
    "remote": ["12.34.43.21", 45358], "session_id": "069db6a6-5faa-4f3a-8de0-ce90af0e7b2c",
}
BASE: dict[str, Any] = {
    "id": "e203776a-a9a0-4f62-acdf-e2a3bfb82a53", "remote": ["198.51.100.7", 36024], "data_type": "modbus",
    "timestamp": "2026-11-27T23:58:03.677730", "public_ip": None, "data": {"type": "NEW_CONNECTION"},
}
HTTP_REQUEST = "('/index.html', [('Host', '192.0.2.10'), ('User-Agent', 'Mozilla/5.0 (lab-scanner)')], None)"


def ctx(raw: str = "") -> RecordContext:
    return context(raw, sensor="lab-conpot-01", honeypot="conpot")


def adapt(**fields: Any) -> list[Event]:
    record = {**BASE, **fields}
    return ADAPTER.adapt(record, ctx(json.dumps(record)))


@pytest.mark.parametrize("name", ["conpot", "conpot-jsonlog"])
def test_real_samples_match_golden_files(name: str) -> None:
    lines, ignored = run_sample(ADAPTER, SAMPLES / f"{name}.json", sensor="lab-conpot-01", honeypot="conpot")
    check_golden(lines, GOLDEN / f"{name}.expected.jsonl")
    assert ignored == []
    for line, record in sample_records(SAMPLES / f"{name}.json"):
        assert detect(record)
        assert all(event.warnings == () for event in ADAPTER.adapt(record, ctx(line)))


def test_mnemosyne_payload_without_timestamp() -> None:
    (event,) = ADAPTER.adapt(MNEMOSYNE, ctx())
    assert (event.kind, event.protocol, event.transport) == (Kind.OTHER, "modbus", "tcp")
    assert event.signature == "modbus function code 3"
    assert (event.src_ip, event.src_port) == ("12.34.43.21", 45358)
    assert event.session == "069db6a6-5faa-4f3a-8de0-ce90af0e7b2c"
    assert (event.ts, event.warnings) == (RECEIVED, ())  # hpfeeds is live: receive time, no warning


@pytest.mark.parametrize(
    "event_type", ["NEW_CONNECTION", "CONNECTION_LOST", "CONNECTION_QUIT", "CONNECTION_TERMINATED", "CONNECTION_TIMEOUT"],
)
def test_session_events_are_connections(event_type: str) -> None:
    (event,) = adapt(data={"type": event_type})
    assert (event.kind, event.action) == (Kind.CONNECTION, f"conpot.{event_type}")


def test_http_request_repr_gives_url_and_user_agent() -> None:
    (event,) = adapt(data_type="http", data={"request": HTTP_REQUEST, "response": "200"})
    assert event.kind is Kind.WEB_REQUEST
    assert (event.url, event.user_agent) == ("http://192.0.2.10/index.html", "Mozilla/5.0 (lab-scanner)")


def test_http_request_repr_with_quotes_and_no_headers() -> None:
    request = '("/it\'s", [], None)'
    (event,) = adapt(data_type="http", data={"request": request})
    assert (event.url, event.user_agent) == ("/it's", None)
    (garbled,) = adapt(data_type="http", data={"request": "GET / HTTP/1.1"})
    assert (garbled.kind, garbled.url) == (Kind.WEB_REQUEST, None)


def test_text_command_protocols_keep_the_command() -> None:
    (event,) = adapt(data_type="guardian_ast", data={"type": "AST I20100", "request": "\x01I20100\n", "response": "x"})
    assert (event.kind, event.action, event.command) == (Kind.COMMAND, "conpot.AST I20100", "\\x01I20100\n")
    (kamstrup,) = adapt(data_type="kamstrup_management_protocol", data={"request": "!GC\r\n", "response": "ok"})
    assert (kamstrup.kind, kamstrup.command) == (Kind.COMMAND, "!GC\r\n".replace("\r", "\\x0d"))


def test_other_typed_events_and_hex_payloads_are_other() -> None:
    (snmp,) = adapt(data_type="snmp", data={"type": "SNMPv2c get", "request": {"oid": "1.3.6.1.2.1.1.1.0", "val": ""}})
    assert (snmp.kind, snmp.action, snmp.transport) == (Kind.OTHER, "conpot.SNMPv2c get", "udp")
    (s7,) = adapt(data_type="s7comm", data={"request": "0300001611e00000001400c1020100c2020102c0010a", "response": "03"})
    assert (s7.kind, s7.action, s7.command, s7.signature) == (Kind.OTHER, "conpot.request", None, None)


def test_protocol_is_lowercased_and_enip_has_no_transport() -> None:
    assert adapt(data_type="IEC104")[0].protocol == "iec104"
    assert adapt(data_type="IEC104")[0].transport == "tcp"
    assert adapt(data_type="enip")[0].transport is None


def test_session_dump_and_lists_give_one_event_per_pdu() -> None:
    dump = {"0": {"type": "NEW_CONNECTION"}, "15": {"function_code": 43, "slave_id": 0}, "31": {"type": "CONNECTION_LOST"}}
    assert [(e.kind, e.signature) for e in adapt(data=dump)] == [
        (Kind.CONNECTION, None), (Kind.OTHER, "modbus function code 43"), (Kind.CONNECTION, None),
    ]
    events = adapt(data=[{"type": "NEW_CONNECTION"}] * (MAX_PDUS + 2))
    assert len(events) == MAX_PDUS
    assert events[0].warnings == (f"data: 2 entries beyond the first {MAX_PDUS} dropped",)
    assert events[1].warnings == ()


def test_no_pdu_is_still_a_connection() -> None:
    assert [(e.kind, e.action) for e in adapt(data=[])] == [(Kind.CONNECTION, "conpot.session")]
    assert [e.kind for e in adapt(data=None)] == [Kind.CONNECTION]


def test_addresses_from_newer_and_json_log_fields() -> None:
    (event,) = adapt(remote=None, src_ip="::ffff:198.51.100.9", src_port=4000, local=["192.0.2.10", 502])
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.9", 4000, "192.0.2.10", 502)
    (public,) = adapt(public_ip="192.0.2.99")
    assert public.dst_ip == "192.0.2.99"
    (bare,) = adapt(remote=["198.51.100.7"])
    assert (bare.src_ip, bare.src_port, bare.warnings) == ("198.51.100.7", None, ())


def test_bad_values_warn_on_every_event() -> None:
    events = adapt(remote=["nope", "x"], data=[{"type": "NEW_CONNECTION"}, 5])
    assert events[0].warnings == (
        "remote is not an IP address; dropped",
        "remote port is not a port number; dropped",
        "data: 1 entries are not objects; dropped",
    )
    assert len(events) == 1


def test_unreadable_timestamp_warns() -> None:
    (event,) = adapt(timestamp="soon")
    assert (event.ts, event.warnings) == (RECEIVED, ("no usable timestamp; receive time used",))


@pytest.mark.parametrize(
    ("record", "reason"),
    [(42, "not a JSON object"), ({"remote": ["1.2.3.4", 1], "data": {}}, "not a conpot event")],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, ctx())
    assert caught.value.reason == reason


def test_detect_is_specific() -> None:
    assert detect(BASE) and detect(MNEMOSYNE)
    assert not detect({"data_type": "modbus"})
    assert not detect({"connection": {"type": "accept"}, "src_ip": "1.2.3.4"})


def test_tpot_json_log_record_keeps_its_honeypot_and_dest_names() -> None:
    record = {"timestamp": "2026-11-27T23:58:03.677730", "type": "ConPot", "src_ip": "198.51.100.7", "src_port": 36024,
              "dest_ip": "172.18.0.5", "dest_port": 502, "data_type": "modbus", "request": None, "response": None,
              "event_type": "NEW_CONNECTION", "sensorid": "conpot"}
    tpot = RecordContext(sensor="tpot-01", honeypot="tpot", received=RECEIVED, timezone=UTC, raw="{}")
    (event,) = ADAPTER.adapt(record, tpot)
    assert (event.honeypot, event.dst_ip, event.dst_port, event.action) == (
        "conpot", "172.18.0.5", 502, "conpot.NEW_CONNECTION",
    )
