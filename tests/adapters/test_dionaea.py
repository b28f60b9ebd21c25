"""The dionaea (log_json) adapter. There is no captured dionaea log here: the sample records are
written from the emitter's source (DinoTools/dionaea modules/python/dionaea/log_json.py) in
both layouts, nested and flat_data, then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.dionaea import ADAPTER, MAX_LISTED, detect
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "dionaea.jsonl"
GOLDEN = DATA / "golden" / "dionaea.expected.jsonl"
BASE: dict[str, Any] = {
    "connection": {"protocol": "ftpd", "transport": "tcp", "type": "accept"},
    "dst_ip": "::ffff:192.0.2.10", "dst_port": 21, "src_hostname": "",
    "src_ip": "::ffff:198.51.100.7", "src_port": 53854, "timestamp": "2026-11-27T21:40:28.182213",
}


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-dionaea-01", honeypot="dionaea", received=RECEIVED, timezone=zone, raw=raw)


def adapt(zone: timezone = UTC, **fields: Any) -> list[Event]:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    return ADAPTER.adapt(record, context(json.dumps(record), zone))


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(ADAPTER, SAMPLE, sensor="lab-dionaea-01", honeypot="dionaea")
    check_golden(lines, GOLDEN)
    assert ignored == ["dionaea listen record: the honeypot opened a port"]


def test_sample_never_warns_and_is_detected() -> None:
    for line, record in sample_records(SAMPLE):
        assert detect(record)
        if record["connection"]["type"] != "listen":
            assert all(event.warnings == () for event in ADAPTER.adapt(record, context(line)))


def test_nested_record_is_a_connection_then_logins_then_commands() -> None:
    events = adapt(
        credentials=[{"username": "anonymous", "password": "guest@"}],
        ftp={"commands": [{"command": "USER", "arguments": ["anonymous"]}, {"command": "SYST", "arguments": []}]},
    )
    assert [event.kind for event in events] == [Kind.CONNECTION, Kind.LOGIN_ATTEMPT, Kind.COMMAND, Kind.COMMAND]
    connection, login, user, syst = events
    assert connection.action == "dionaea.connection.tcp.accept"
    assert (login.action, login.username, login.password) == ("dionaea.modules.python.ftp.login", "anonymous", "guest@")
    assert (user.command, syst.command) == ("USER anonymous", "SYST")
    assert {event.outcome for event in events} == {Outcome.UNKNOWN}
    for event in events:  # every event carries the record's addresses and time
        assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 53854, "192.0.2.10", 21)
        assert (event.transport, event.protocol) == ("tcp", "ftp")
        assert event.ts == datetime(2026, 11, 27, 21, 40, 28, 182213, tzinfo=UTC)


def test_flat_layout_pairs_entries_by_position() -> None:
    events = adapt(
        connection={"protocol": "mssqld", "transport": "tcp", "type": "accept"},
        credentials={"username": ["sa", "admin", "root"], "password": ["", "admin"]},
        ftp={"commands": {"command": ["USER", "PASS"], "arguments": ["a b", "c"]}},
    )
    logins = [(e.username, e.password, e.action) for e in events if e.kind is Kind.LOGIN_ATTEMPT]
    assert logins == [
        ("sa", "", "dionaea.modules.python.mssql.login"),
        ("admin", "admin", "dionaea.modules.python.mssql.login"),
        ("root", None, "dionaea.modules.python.mssql.login"),
    ]
    assert [e.command for e in events if e.kind is Kind.COMMAND] == ["USER a b", "PASS c"]


def test_flat_layout_with_a_single_value_instead_of_a_list() -> None:
    events = adapt(credentials={"username": "root", "password": "toor"})
    assert [(e.username, e.password) for e in events[1:]] == [("root", "toor")]


def test_empty_credentials_give_no_login() -> None:
    assert len(adapt(credentials={})) == 1
    assert len(adapt(credentials=[])) == 1


def test_timestamp_without_zone_is_utc_whatever_the_sensor_zone() -> None:
    (event,) = adapt(zone=timezone(timedelta(hours=9)))
    assert event.ts == datetime(2026, 11, 27, 21, 40, 28, 182213, tzinfo=UTC)


@pytest.mark.parametrize(
    ("service", "transport", "protocol", "expected_transport"),
    [
        ("smbd", "tcp", "smb", "tcp"), ("epmapper", "tcp", "msrpc", "tcp"), ("httpd", "tls", "http", "tcp"),
        ("mysqld", "tcp", "mysql", "tcp"), ("SipSession", "udp", "sip", "udp"),
        ("TftpServerHandler", "udp", "tftp", "udp"), ("Memcache", "tcp", "memcache", "tcp"),
        (None, None, None, None),
    ],
)
def test_service_names_become_protocols(service: Any, transport: Any, protocol: Any, expected_transport: Any) -> None:
    (event,) = adapt(connection={"protocol": service, "transport": transport, "type": "accept"})
    assert (event.protocol, event.transport) == (protocol, expected_transport)


def test_tls_is_kept_in_the_action() -> None:
    (event,) = adapt(connection={"protocol": "httpd", "transport": "tls", "type": "accept"})
    assert event.action == "dionaea.connection.tls.accept"


def test_logins_of_other_services_get_a_generic_action() -> None:
    events = adapt(connection={"protocol": "smbd", "transport": "tcp", "type": "accept"},
                   credentials=[{"username": "u", "password": "p"}])
    assert events[1].action == "dionaea.login"


def test_odd_connection_type_does_not_reach_the_action() -> None:
    (event,) = adapt(connection={"protocol": "smbd", "transport": "tcp", "type": "<script>"})
    assert event.action == "dionaea.connection"


def test_listen_record_is_ignored() -> None:
    with pytest.raises(RecordIgnored):
        adapt(connection={"protocol": "smbd", "transport": "tcp", "type": "listen"})


def test_tpot_dest_names_and_documented_nested_layout_are_read() -> None:
    (tpot,) = adapt(dst_ip=None, dst_port=None, dest_ip="192.0.2.11", dest_port=8080)
    assert (tpot.dst_ip, tpot.dst_port) == ("192.0.2.11", 8080)
    documented = {"connection": {
        "protocol": "httpd", "transport": "tcp", "type": "accept",
        "remote": {"address": "::ffff:203.0.113.4", "port": 4711, "hostname": ""},
        "local": {"address": "192.0.2.10", "port": 80},
    }}
    (event,) = ADAPTER.adapt(documented, context())
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("203.0.113.4", 4711, "192.0.2.10", 80)


def test_bad_values_warn_on_every_event_and_list_problems_once() -> None:
    events = adapt(src_ip="999.1.1.1", dst_port="http", credentials=[{"username": ["x"], "password": "p"}, "junk"])
    connection, login = events
    assert connection.warnings == (
        "src_ip is not an IP address; dropped",
        "dst_port is not a port number; dropped",
        "credentials: 1 entries are not objects; dropped",
    )
    assert login.warnings == (
        "src_ip is not an IP address; dropped",
        "dst_port is not a port number; dropped",
        "username is not text; dropped",
    )


def test_ftp_arguments_keep_only_text() -> None:
    events = adapt(ftp={"commands": [{"command": "STOR", "arguments": ["a", {"b": 1}, 7, "c"]}, {"command": 12}]})
    assert [e.command for e in events[1:]] == ["STOR a c", None]
    assert events[2].warnings == ("ftp command is not text; dropped",)


def test_long_lists_are_capped_with_a_warning() -> None:
    many = {"username": ["u"] * (MAX_LISTED + 10), "password": ["p"] * 3}
    events = adapt(credentials=many)
    assert len(events) == 1 + MAX_LISTED
    assert events[0].warnings == (f"credentials: 10 entries beyond the first {MAX_LISTED} dropped",)


def test_missing_timestamp_uses_receive_time_with_a_warning() -> None:
    (event,) = adapt(timestamp=None)
    assert event.ts == RECEIVED
    assert event.warnings == ("no usable timestamp; receive time used",)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([BASE], "not a JSON object"),
        ({"src_ip": "1.2.3.4"}, "not a dionaea log_json record"),
        ({**BASE, "connection": "accept"}, "not a dionaea log_json record"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_is_specific() -> None:
    assert detect(BASE)
    assert not detect({"connection_type": "accept", "remote_host": "1.2.3.4"})
    assert not detect({"eventid": "cowrie.session.connect", "src_ip": "1.2.3.4"})
    assert not detect(["connection"])


def test_tpot_elasticsearch_record_keeps_its_honeypot_and_top_level_credentials() -> None:
    record = {**BASE, "type": "Dionaea", "dest_ip": "172.18.0.4", "dest_port": 1433, "username": "sa", "password": ""}
    record["connection"] = {"protocol": "mssqld", "transport": "tcp", "type": "accept"}
    del record["dst_ip"], record["dst_port"]
    tpot = RecordContext(sensor="tpot-01", honeypot="tpot", received=RECEIVED, timezone=UTC, raw="{}")
    connection, login = ADAPTER.adapt(record, tpot)
    assert {connection.honeypot, login.honeypot} == {"dionaea"}
    assert (login.username, login.password, login.dst_port) == ("sa", "", 1433)
    assert ADAPTER.adapt(BASE, tpot)[0].honeypot == "tpot"  # no `type`: the sensor's registration
