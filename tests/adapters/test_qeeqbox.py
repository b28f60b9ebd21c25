"""The qeeqbox adapter: the golden file from real qeeqbox honeypots 0.66 lines, then synthetic
records built from the honeypots sources for what the sample lacks."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.qeeqbox import ADAPTER, detect
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden, event_line

SAMPLE = DATA / "samples" / "qeeqbox.jsonl"
GOLDEN = DATA / "golden" / "qeeqbox.expected.jsonl"
BASE: dict[str, Any] = {
    "server": "ssh_server", "src_ip": "198.51.100.7", "src_port": "58480", "dest_ip": "192.0.2.10",
    "dest_port": "2224", "timestamp": "2026-11-27T21:49:26.334551",
}


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-qeeqbox-01", honeypot="qeeqbox", received=RECEIVED, timezone=zone, raw=raw)


def adapt_one(**fields: Any) -> Event:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    (event,) = ADAPTER.adapt(record, context(json.dumps(record)))
    return event


def test_sample_matches_golden_file() -> None:
    lines = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["action"] != "process":  # ignored: see the next test
            lines.extend(event_line(event) for event in ADAPTER.adapt(record, context(line)))
    check_golden(lines, GOLDEN)


def test_process_records_are_ignored_and_the_rest_kept() -> None:
    ignored = kept = 0
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        try:
            (event,) = ADAPTER.adapt(json.loads(line), context(line))
        except RecordIgnored as caught:
            assert caught.reason.startswith("qeeqbox process: ")
            ignored += 1
            continue
        assert event.raw == line and event.action.startswith("qeeqbox.")
        kept += 1
    assert (ignored, kept) == (7, 30)


def test_ssh_logins_match_the_cross_honeypot_shape() -> None:
    failed = adapt_one(action="login", status="failed", username="root", password="wrongpass")
    assert (failed.kind, failed.outcome, failed.transport, failed.protocol) == (
        Kind.LOGIN_ATTEMPT, Outcome.FAILURE, "tcp", "ssh",
    )
    assert (failed.username, failed.password, failed.src_port, failed.dst_port) == ("root", "wrongpass", 58480, 2224)
    assert adapt_one(action="login", status="success", username="a", password="b").outcome is Outcome.SUCCESS


def test_naive_timestamp_is_utc_whatever_the_configured_zone() -> None:
    record = {**BASE, "action": "connection"}
    (event,) = ADAPTER.adapt(record, context(zone=timezone(timedelta(hours=-12))))
    assert event.ts.isoformat() == "2026-11-27T21:49:26.334551+00:00"


@pytest.mark.parametrize(
    "password", ["9895544e252a9affea48c8f1e2e8b0a6804a393e", "4a:0:0:1:85:a6:ff:1:0:0:0:1"],
)
def test_mysql_scrambled_response_is_not_a_password(password: str) -> None:
    event = adapt_one(server="mysql_server", action="login", status="failed", username="root", password=password)
    assert (event.username, event.password) == ("root", None)
    assert event.warnings == ("scrambled mysql response; password not kept",)


def test_mysql_successful_login_keeps_the_configured_password() -> None:
    event = adapt_one(server="mysql_server", action="login", status="success", username="admin", password="secret")
    assert event.password == "secret" and event.warnings == ()


def test_a_hex_password_on_another_service_is_kept() -> None:
    digest = "9895544e252a9affea48c8f1e2e8b0a6804a393e"
    assert adapt_one(action="login", status="failed", username="u", password=digest).password == digest


def test_public_key_login_has_no_password_and_unknown_outcome() -> None:
    event = adapt_one(action="login", username="deploy", key_fingerprint="a1b2c3")
    assert (event.password, event.outcome) == (None, Outcome.UNKNOWN)
    assert event.warnings == ("public-key login; no password",)


@pytest.mark.parametrize("action", ["command", "interactive"])
def test_commands_come_from_data(action: str) -> None:
    event = adapt_one(action=action, data={"command": "uname -a"})
    assert (event.kind, event.command) == (Kind.COMMAND, "uname -a")


def test_http_connection_with_captured_request_and_the_method_record() -> None:
    data = {"method": "GET", "uri": "/login.html?next=/admin", "User-Agent": "Mozilla/5.0 (lab-scanner)"}
    connection = adapt_one(server="http_server", action="connection", data=data, dest_port="8082")
    assert (connection.kind, connection.url, connection.user_agent) == (
        Kind.CONNECTION, "/login.html?next=/admin", "Mozilla/5.0 (lab-scanner)",
    )
    request = adapt_one(server="http_server", action="PUT")
    assert (request.kind, request.protocol) == (Kind.WEB_REQUEST, "http")


def test_protocol_and_transport_from_the_server_name() -> None:
    assert adapt_one(server="dns_server", action="connection").transport == "udp"
    assert adapt_one(server="http_proxy_server", action="connection").protocol == "http"
    assert adapt_one(server="socks5_server", action="connection").protocol == "socks5"


def test_unknown_action_is_other_with_a_warning() -> None:
    event = adapt_one(action="teleport")
    assert (event.kind, event.action) == (Kind.OTHER, "qeeqbox.teleport")
    assert event.warnings == ("unknown qeeqbox action; kept as kind other",)


def test_bad_values_are_warnings() -> None:
    event = adapt_one(action="connection", src_ip="nope", src_port="²", username={"x": 1}, timestamp="later")
    assert (event.src_ip, event.src_port, event.ts) == (None, None, RECEIVED)
    assert event.warnings == (
        "src_ip is not an IP address; dropped", "src_port is not a port number; dropped",
        "no usable timestamp; receive time used",
    )


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("login", "not a JSON object"),
        ({"server": "ssh_server"}, "missing action"),
        ({"action": "login"}, "not a qeeqbox honeypots record"),
        ({"action": 5, "server": "ssh_server"}, "not a qeeqbox honeypots record"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_setup_is_ignored_too() -> None:
    with pytest.raises(RecordIgnored):
        adapt_one(action="setup", status="error")


def test_detect() -> None:
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        assert detect(json.loads(line))
    cowrie = json.loads((DATA / "samples" / "cowrie.json").read_text(encoding="utf-8").splitlines()[0])
    canary = json.loads((DATA / "samples" / "opencanary.jsonl").read_text(encoding="utf-8").splitlines()[9])
    assert not detect(cowrie) and not detect(canary) and not detect([]) and not detect({"server": 1})
