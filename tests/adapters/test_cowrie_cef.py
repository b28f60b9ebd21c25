"""The cowrie-cef adapter: the golden file from real cowrie 3.1.4 CEF lines, a line-by-line
comparison with the JSON log of the same run, then syslog wrappers, escapes and times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from honeyatlas.adapters import RecordContext, cowrie
from honeyatlas.adapters.cowrie_cef import ADAPTER, detect, parse_extension
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden, context, event_line

SAMPLE = DATA / "samples" / "cowrie-cef.txt"
JSON_SAMPLE = DATA / "samples" / "cowrie.json"
GOLDEN = DATA / "golden" / "cowrie-cef.expected.jsonl"
LOGIN = (
    "CEF:0|Cowrie|Cowrie|1.0|cowrie.login.failed|cowrie.login.failed|5|app=SSHv2 destinationServicename=sshd "
    "deviceExternalId=lab-cowrie-01 msg=login attempt [root/root] failed src=198.51.100.7 proto=tcp duser=root "
    "outcome=failed"
)
# What cowrie's CEF does not carry (no time, no session or ports after connect), so these
# fields differ from the JSON log's event; then, per eventid, what only its `msg` or JSON has.
NOT_IN_CEF = {"session", "dst_ip", "dst_port", "src_port", "protocol", "ts", "warnings", "raw", "id"}
NOT_IN_CEF_BY_EVENT = {
    "cowrie.session.file_upload": {"url"},  # filePath is the stored hash, not cowrie's target path
    "cowrie.direct-tcpip.request": {"url"},  # the forward target is only in msg
    "cowrie.direct-tcpip.data": {"url"},
    "cowrie.direct-tcpip.ja4h": {"url"},
    "cowrie.command.chpasswd": {"username"},  # only in msg
    "cowrie.login.failed": {"password"},
    "cowrie.login.success": {"password"},
}


def adapt_line(line: str, ctx: RecordContext | None = None) -> Event:
    (event,) = ADAPTER.adapt(line, ctx or context(line))
    return event


def test_sample_matches_golden_file() -> None:
    lines = [event_line(adapt_line(line)) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    check_golden(lines, GOLDEN)


def test_every_line_agrees_with_the_json_log_of_the_same_run() -> None:
    cef_lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    json_lines = JSON_SAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(cef_lines) == len(json_lines) == 99
    for cef_line, json_line in zip(cef_lines, json_lines, strict=True):
        from_cef = adapt_line(cef_line)
        (from_json,) = cowrie.ADAPTER.adapt(json.loads(json_line), context(json_line))
        skipped = NOT_IN_CEF | NOT_IN_CEF_BY_EVENT.get(from_json.action or "", set())
        if from_json.action == "cowrie.session.connect":  # the one event whose CEF has ports and a session
            skipped -= {"session", "src_port", "dst_ip", "dst_port", "protocol"}
        for name in Event.__struct_fields__:
            if name not in skipped:
                assert getattr(from_cef, name) == getattr(from_json, name), (from_json.action, name)


def test_login_has_username_no_password_and_the_cowrie_kind() -> None:
    event = adapt_line(LOGIN)
    assert (event.kind, event.outcome, event.action) == (Kind.LOGIN_ATTEMPT, Outcome.FAILURE, "cowrie.login.failed")
    assert (event.username, event.password, event.src_ip) == ("root", None, "198.51.100.7")


def test_no_time_anywhere_falls_back_with_a_warning() -> None:
    event = adapt_line(LOGIN)
    assert event.ts == RECEIVED and event.warnings == ("no usable timestamp; receive time used",)


def test_rfc3164_header_is_stripped_and_gives_the_time_in_the_configured_zone() -> None:
    zone = timezone(timedelta(hours=1))
    ctx = RecordContext(sensor="s", honeypot="cowrie", received=RECEIVED, timezone=zone, raw="")
    event = adapt_line(f"<134>Nov 27 22:42:54 sensor01 cowrie: {LOGIN}", ctx)
    assert event.ts == datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)
    assert (event.username, event.warnings) == ("root", ())


def test_rfc3164_year_is_the_one_nearest_the_receive_time() -> None:
    new_year = RecordContext(sensor="s", honeypot="cowrie", received=datetime(2027, 1, 1, 0, 5, tzinfo=UTC),
                             timezone=UTC, raw="")
    assert adapt_line(f"Dec 31 23:59:58 host cowrie: {LOGIN}", new_year).ts.year == 2026
    assert adapt_line(f"Jan  1 00:04:00 host cowrie: {LOGIN}", new_year).ts == datetime(2027, 1, 1, 0, 4, tzinfo=UTC)
    assert adapt_line(f"Feb 29 10:00:00 host cowrie: {LOGIN}", new_year).warnings == (
        "no usable timestamp; receive time used",
    )


def test_rfc5424_header_and_rfc3339_file_lines() -> None:
    line = f"<134>1 2026-11-27T21:42:54.275704Z sensor01 cowrie - - - {LOGIN}"
    assert adapt_line(line).ts == datetime(2026, 11, 27, 21, 42, 54, 275704, tzinfo=UTC)
    nil_time = adapt_line(f"<134>1 - sensor01 cowrie - - [x@1 a=\"b\"] {LOGIN}")
    assert nil_time.ts == RECEIVED and nil_time.username == "root"
    rsyslog = adapt_line(f"2026-11-27T22:42:54+01:00 sensor01 cowrie: {LOGIN}")
    assert rsyslog.ts == datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rt", "expected"),
    [
        ("1795815774275", datetime(2026, 11, 27, 21, 42, 54, 275000, tzinfo=UTC)),
        ("Nov 27 2026 21:42:54", datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)),
        ("Nov 27 2026 21:42:54.250 UTC", datetime(2026, 11, 27, 21, 42, 54, 250000, tzinfo=UTC)),
        ("2026-11-27T21:42:54Z", datetime(2026, 11, 27, 21, 42, 54, tzinfo=UTC)),
    ],
)
def test_rt_wins_over_the_syslog_time(rt: str, expected: datetime) -> None:
    assert adapt_line(f"<134>Nov 20 10:00:00 host cowrie: {LOGIN} rt={rt}").ts == expected


def test_rt_with_a_named_zone_is_not_guessed() -> None:
    assert adapt_line(f"{LOGIN} rt=Nov 27 2026 21:42:54 CET").ts == RECEIVED


def test_header_and_extension_escapes() -> None:
    line = (
        r"CEF:0|Cowrie|Cow\|rie\\|1.0|cowrie.command.input|x|5|msg=CMD: echo a\=b \\ c\nd src=198.51.100.7"
    )
    with pytest.raises(RecordRejected):  # the escaped product is "Cow|rie\", not Cowrie
        adapt_line(line)
    event = adapt_line(line.replace(r"Cow\|rie\\", "Cowrie"))
    assert event.command == "echo a=b \\ c\nd"
    assert event.src_ip == "198.51.100.7"


def test_parse_extension_values_run_to_the_next_key() -> None:
    assert parse_extension("msg=Command not found: foobarcmd  src=1.2.3.4 x=") == {
        "msg": "Command not found: foobarcmd ", "src": "1.2.3.4", "x": "",
    }
    assert parse_extension(r"msg=a\=b c=d") == {"msg": "a=b", "c": "d"}
    assert parse_extension("no pairs here") == {}


def test_message_templates_fill_what_the_extension_lacks() -> None:
    prefix = "CEF:0|Cowrie|Cowrie|1.0|{0}|{0}|5|"
    download = adapt_line(
        prefix.format("cowrie.session.file_download")
        + "msg=Downloaded URL (http://203.0.113.5/x.sh) with SHA-256 " + "ab" * 32 + " to var/x src=198.51.100.7"
        + " filehash=" + "AB" * 32,
    )
    assert (download.url, download.sha256, download.kind) == ("http://203.0.113.5/x.sh", "ab" * 32, Kind.FILE_DOWNLOAD)
    version = adapt_line(prefix.format("cowrie.client.version") + "msg=Remote SSH version: SSH-2.0-Go src=1.2.3.4")
    assert version.client_version == "SSH-2.0-Go"
    connect = adapt_line(
        prefix.format("cowrie.session.connect")
        + "msg=New connection: 1.2.3.4:5 (6.7.8.9:2223) [session: a45a452ef0a7] src=1.2.3.4 spt=5 dpt=2223 dst=6.7.8.9"
    )
    assert (connect.session, connect.protocol, connect.dst_port) == ("a45a452ef0a7", "telnet", 2223)
    other = adapt_line(prefix.format("cowrie.command.input") + "msg=something else src=1.2.3.4")
    assert other.command is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"CEF:0|x".decode(), "CEF header has fewer than seven fields"),
        ("hello world", "not a CEF line"),
        ("CEF:0|ArcSight|Logger|1|x|y|5|src=1.2.3.4", "not cowrie CEF (device vendor/product is not Cowrie)"),
        ("CEF:0|Cowrie|Cowrie|1.0|dionaea.connection|x|5|src=1.2.3.4", "CEF signature id is not a cowrie eventid"),
    ],
)
def test_rejections(line: str, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(line, context(line))
    assert caught.value.reason == reason


def test_non_text_is_rejected_and_bytes_are_decoded() -> None:
    with pytest.raises(RecordRejected):
        ADAPTER.adapt({"eventid": "cowrie.login.failed"}, context())
    (event,) = ADAPTER.adapt(LOGIN.encode(), context())
    assert event.username == "root"


def test_detect() -> None:
    assert all(detect(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines())
    assert detect(f"<134>Nov 27 21:42:54 host cowrie: {LOGIN}")
    assert not detect("CEF:0|ArcSight|Logger|1|x|y|5|") and not detect({"eventid": "cowrie.x"}) and not detect(None)


def test_adapter_frames_text() -> None:
    assert (ADAPTER.name, ADAPTER.input) == ("cowrie-cef", "text")
