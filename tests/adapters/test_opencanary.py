"""The opencanary adapter: golden files from real OpenCanary 0.9.10 lines (and the same records
received over hpfeeds), a second golden file written from the module sources for every logtype
the sample lacks, then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from typing import Any

import msgspec
import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.opencanary import ADAPTER, detect
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden, event_line

SAMPLES = DATA / "samples"
GOLDEN = DATA / "golden"
BASE: dict[str, Any] = {
    "dst_host": "192.0.2.10", "dst_port": 2022, "src_host": "198.51.100.7", "src_port": 58912,
    "node_id": "lab-opencanary-01", "utc_time": "2026-11-27 21:46:50.407831",
    "local_time": "2026-11-27 21:46:50.407823", "local_time_adjusted": "2026-11-27 22:46:50.407835",
}
# Every logtype of formats.md §2.4 (opencanary/logger.py), split by treatment.
OWN_MESSAGES = [1000, 1001, 1002, 1003, 1004, 1005, 1006]
ATTACK_CODES = [
    2000, 2001, 3000, 3001, 3002, 3003, 4000, 4001, 4002, 5000, 5001, 5002, 5003, 5004, 5005, 6001, 6002, 7001,
    8001, 9001, 9002, 9003, 10001, 11001, 12001, 13001, 14001, 15001, 16001, 17001, 18001, 18002, 18003, 18004,
    18005, 19001, 20001, *range(99000, 99010),
]


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-opencanary-01", honeypot="opencanary", received=RECEIVED, timezone=zone, raw=raw)


def adapt_one(logtype: int, logdata: dict[str, Any] | None = None, **fields: Any) -> Event:
    record = {**BASE, "logtype": logtype, "logdata": logdata or {}, **fields}
    (event,) = ADAPTER.adapt(record, context(json.dumps(record)))
    return event


def golden_lines(path_name: str) -> tuple[list[str], list[str]]:
    """(event lines for the golden file, reasons of the ignored records)."""
    lines, ignored = [], []
    for line in (SAMPLES / path_name).read_text(encoding="utf-8").splitlines():
        try:
            lines.extend(event_line(event) for event in ADAPTER.adapt(json.loads(line), context(line)))
        except RecordIgnored as caught:
            ignored.append(caught.reason)
    return lines, ignored


def test_real_sample_matches_golden_file() -> None:
    lines, ignored = golden_lines("opencanary.jsonl")
    check_golden(lines, GOLDEN / "opencanary.expected.jsonl")
    assert ignored == ["opencanary 1001 msg: OpenCanary's own message, not attacker activity"] * 14


def test_every_other_logtype_matches_golden_file() -> None:
    lines, ignored = golden_lines("opencanary-more.jsonl")
    check_golden(lines, GOLDEN / "opencanary-more.expected.jsonl")
    assert [reason.split(":")[0] for reason in ignored] == [
        "opencanary 1000 boot", "opencanary 1002 debug", "opencanary 1003 error", "opencanary 1004 ping",
        "opencanary 1005 config save", "opencanary 1006 example",
    ]


def test_hpfeeds_payloads_give_the_same_events_as_the_log_file() -> None:
    by_time = {}
    for line in (SAMPLES / "opencanary.jsonl").read_text(encoding="utf-8").splitlines():
        by_time[json.loads(line)["utc_time"]] = json.loads(line)
    compared = 0
    for line in (SAMPLES / "opencanary-hpfeeds.json").read_text(encoding="utf-8").splitlines():
        payload = json.loads(line)["payload"]
        if payload["utc_time"] not in by_time or payload["logtype"] in OWN_MESSAGES:
            continue
        (from_hpfeeds,) = ADAPTER.adapt(payload, context())
        (from_file,) = ADAPTER.adapt(by_time[payload["utc_time"]], context())
        assert event_line(from_hpfeeds) == event_line(from_file)
        compared += 1
    assert compared == 13


def test_sample_attack_lines_have_no_warnings_except_the_mysql_hash() -> None:
    for line in (SAMPLES / "opencanary.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["logtype"] in OWN_MESSAGES:
            continue
        (event,) = ADAPTER.adapt(record, context(line))
        expected = ("scrambled mysql response; password not kept",) if record["logtype"] == 8001 else ()
        assert event.warnings == expected
        assert event.raw == line and event.sensor == "lab-opencanary-01"


@pytest.mark.parametrize("code", OWN_MESSAGES)
def test_own_messages_are_ignored_with_the_code_in_the_reason(code: int) -> None:
    with pytest.raises(RecordIgnored) as caught:
        adapt_one(code, {"msg": {"logdata": "Canary running!!!"}}, src_host="", src_port=-1)
    assert caught.value.reason.startswith(f"opencanary {code} ")
    assert ":" in caught.value.reason  # the metric label is the part before it


@pytest.mark.parametrize("code", ATTACK_CODES)
def test_every_attack_logtype_has_a_kind_and_no_unknown_warning(code: int) -> None:
    event = adapt_one(code)
    assert event.action == f"opencanary.{code}"
    assert "unknown opencanary logtype; kept as kind other" not in event.warnings
    if code >= 99000:
        assert event.kind is Kind.OTHER


def test_unknown_logtype_is_other_with_a_warning() -> None:
    event = adapt_one(31337)
    assert (event.kind, event.action) == (Kind.OTHER, "opencanary.31337")
    assert event.warnings == ("unknown opencanary logtype; kept as kind other",)


def test_ssh_login_is_a_failed_login_with_the_client_banner() -> None:
    event = adapt_one(4002, {"USERNAME": "root", "PASSWORD": "toor", "REMOTEVERSION": "SSH-2.0-Go", "LOCALVERSION": "x"})
    assert (event.kind, event.outcome, event.protocol, event.transport) == (
        Kind.LOGIN_ATTEMPT, Outcome.FAILURE, "ssh", "tcp",
    )
    assert (event.username, event.password, event.client_version) == ("root", "toor", "SSH-2.0-Go")


def test_utc_time_is_utc_whatever_the_configured_zone() -> None:
    record = {**BASE, "logtype": 4000, "logdata": {"SESSION": "0"}}
    (event,) = ADAPTER.adapt(record, context(zone=timezone(timedelta(hours=14))))
    assert event.ts.isoformat() == "2026-11-27T21:46:50.407831+00:00"


def test_mysql_scrambled_response_is_not_a_password() -> None:
    event = adapt_one(8001, {"USERNAME": "root", "PASSWORD": "0d017f9c7352bcb0f4ecf6192d97f2447c208363"})
    assert (event.username, event.password) == ("root", None)
    assert event.warnings == ("scrambled mysql response; password not kept",)


def test_vnc_keeps_only_a_password_opencanary_cracked() -> None:
    challenge = {"VNC Server Challenge": "00" * 16, "VNC Client Response": "11" * 16}
    hidden = adapt_one(12001, {**challenge, "VNC Password": "<Password was not in the common list>"})
    assert hidden.password is None and hidden.warnings == ("vnc DES response; password not recovered",)
    cracked = adapt_one(12001, {**challenge, "VNC Password": "123456"})
    assert cracked.password == "123456" and cracked.warnings == ()
    assert cracked.outcome is Outcome.FAILURE


def test_mssql_keys_are_matched_without_case() -> None:
    event = adapt_one(9001, {"UserName": "sa", "Password": "P@ss", "HostName": "KALI"})
    assert (event.username, event.password, event.protocol) == ("sa", "P@ss", "mssql")


def test_tftp_write_is_an_upload_and_read_is_other() -> None:
    write = adapt_one(10001, {"FILENAME": "x.bin", "OPCODE": "WRITE", "MODE": "octet"})
    read = adapt_one(10001, {"FILENAME": "cfg", "OPCODE": "READ", "MODE": "octet"})
    assert (write.kind, write.url, write.transport) == (Kind.FILE_UPLOAD, "x.bin", "udp")
    assert (read.kind, read.url) == (Kind.OTHER, "cfg")


def test_nmap_scans_carry_a_signature() -> None:
    assert adapt_one(5001).signature is None
    assert adapt_one(5004).signature == "nmap XMAS scan"
    assert adapt_one(5002).kind is Kind.SCAN


def test_redis_command_joins_cmd_and_args() -> None:
    assert adapt_one(17001, {"CMD": "CONFIG GET", "ARGS": "dir"}).command == "CONFIG GET dir"
    assert adapt_one(17001, {"CMD": "QUIT", "ARGS": ""}).command == "QUIT"


def test_mongodb_action_chooses_the_kind() -> None:
    assert adapt_one(20001, {"action": "mongodb.auth_attempt", "username": "admin"}).username == "admin"
    assert adapt_one(20001, {"action": "mongodb.command", "command": "find"}).kind is Kind.COMMAND
    connection = adapt_one(20001, {"action": "mongodb.connection"})
    assert (connection.kind, connection.outcome) == (Kind.CONNECTION, Outcome.UNKNOWN)


def test_no_address_markers_are_silent_but_bad_values_warn() -> None:
    quiet = adapt_one(5001, src_host="", src_port=-1, dst_host="", dst_port="-1")
    assert (quiet.src_ip, quiet.src_port, quiet.dst_ip, quiet.dst_port, quiet.warnings) == (None, None, None, None, ())
    noisy = adapt_one(5001, src_host="999.0.0.1", src_port=70000)
    assert noisy.warnings == ("src_host is not an IP address; dropped", "src_port is not a port number; dropped")


def test_ipv4_mapped_source_and_string_ports() -> None:
    event = adapt_one(4000, src_host="::ffff:203.0.113.9", src_port="41000", dst_port="2022")
    assert (event.src_ip, event.src_port, event.dst_port) == ("203.0.113.9", 41000, 2022)


def test_record_node_id_is_not_the_sensor() -> None:
    assert adapt_one(4000, node_id="someone-else").sensor == "lab-opencanary-01"


def test_logtype_as_text_and_logdata_of_the_wrong_type() -> None:
    assert adapt_one("4000").action == "opencanary.4000"  # type: ignore[arg-type]
    record = {**BASE, "logtype": 4000, "logdata": ["x"]}
    (event,) = ADAPTER.adapt(record, context())
    assert event.warnings == ("logdata is not an object; ignored",)


def test_missing_time_falls_back_with_a_warning() -> None:
    event = adapt_one(4000, utc_time="soon")
    assert event.ts == RECEIVED and event.warnings == ("no usable timestamp; receive time used",)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1], "not a JSON object"),
        ({"logdata": {}}, "missing logtype"),
        ({"logtype": "ssh"}, "logtype is not an OpenCanary log type number"),
        ({"logtype": True}, "logtype is not an OpenCanary log type number"),
        ({"logtype": -5}, "logtype is not an OpenCanary log type number"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_claims_opencanary_and_nothing_else() -> None:
    for line in (SAMPLES / "opencanary.jsonl").read_text(encoding="utf-8").splitlines():
        assert detect(msgspec.json.decode(line))
    cowrie = json.loads((SAMPLES / "cowrie.json").read_text(encoding="utf-8").splitlines()[0])
    qeeqbox = json.loads((SAMPLES / "qeeqbox.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert not detect(cowrie) and not detect(qeeqbox) and not detect("CEF:0|x") and not detect(None)
