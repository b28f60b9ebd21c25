"""The cowrie-sessions adapter: the golden file from the 10 real cowrie 3.1.4 hpfeeds summaries
(tests/data/samples/cowrie-sessions.jsonl holds their payloads, unwrapped from the capture), the
proof that the summaries and the JSON log of the same run give matching de-duplication keys,
then synthetic summaries for what the sample lacks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from honeyatlas.adapters import cowrie
from honeyatlas.adapters.cowrie_sessions import ADAPTER, MAX_ITEMS, detect
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from honeyatlas.transforms.dedupe import SessionDeduplicator
from tests.adapters.golden import DATA, check_golden, context, event_line

SAMPLE = DATA / "samples" / "cowrie-sessions.jsonl"
JSON_SAMPLE = DATA / "samples" / "cowrie.json"
GOLDEN = DATA / "golden" / "cowrie-sessions.expected.jsonl"
UNPAIRED = "summary hashes cannot be paired with its urls; sha256 left empty"
BASE: dict[str, Any] = {
    "session": "a357a8d9e100", "startTime": "2026-11-27T21:44:02.767090Z", "endTime": "2026-11-27T21:44:14.786606Z",
    "peerIP": "198.51.100.7", "peerPort": 41062, "hostIP": "192.0.2.10", "hostPort": 2222, "loggedin": None,
    "credentials": [], "commands": [], "unknownCommands": [], "urls": [], "version": None, "ttylog": None,
    "hashes": [], "protocol": "ssh",
}


def dedup_key(event: Event) -> tuple[str | None, ...]:
    """The key the pipeline's SessionDeduplicator matches the two streams on."""
    return (event.sensor, event.session, event.action, event.username, event.password, event.command,
            event.url, event.sha256)


def summaries() -> list[tuple[str, dict[str, Any]]]:
    return [(line, json.loads(line)) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def expand(**fields: Any) -> list[Event]:
    summary = {**BASE, **fields}
    return ADAPTER.adapt(summary, context(json.dumps(summary)))


def test_sample_matches_golden_file() -> None:
    lines = [event_line(event) for line, summary in summaries() for event in ADAPTER.adapt(summary, context(line))]
    check_golden(lines, GOLDEN)


def test_samples_are_the_same_sessions_as_the_json_log() -> None:
    json_sessions = {json.loads(line)["session"] for line in JSON_SAMPLE.read_text(encoding="utf-8").splitlines()}
    assert {summary["session"] for _, summary in summaries()} == json_sessions
    assert len(json_sessions) == 10


def test_the_deduplicator_counts_every_summary_event_once_in_either_order() -> None:
    """Every one of the 61 events the 10 real summaries expand into meets its twin from the
    JSON log of the same sessions, whichever stream arrives first. The three downloads of
    session a357a8d9e100 carry no sha256 (the summary cannot pair its URLs with its hash
    set), so the deduplicator matches downloads by URL."""
    log_events = [
        event
        for line in JSON_SAMPLE.read_text(encoding="utf-8").splitlines()
        for event in cowrie.ADAPTER.adapt(json.loads(line), context(line))
    ]
    summary_events = [event for line, summary in summaries() for event in ADAPTER.adapt(summary, context(line))]
    assert len(summary_events) == 61
    assert sum(UNPAIRED in e.warnings for e in summary_events) == 3

    log_first = SessionDeduplicator(ttl_seconds=3600, max_sessions=100)
    assert all(log_first.keep(e, 0) for e in log_events)
    assert [e for e in summary_events if log_first.keep(e, 1)] == []

    summary_first = SessionDeduplicator(ttl_seconds=3600, max_sessions=100)
    assert all(summary_first.keep(e, 1) for e in summary_events)
    kept = [e for e in log_events if summary_first.keep(e, 0)]
    assert len(kept) == len(log_events) - 61


def test_events_equal_the_json_log_events_beyond_the_key() -> None:
    """kind, outcome, addresses, protocol and client banner agree too, not only the key."""
    json_events: dict[tuple[str | None, ...], Event] = {}
    for line in JSON_SAMPLE.read_text(encoding="utf-8").splitlines():
        for event in cowrie.ADAPTER.adapt(json.loads(line), context(line)):
            json_events.setdefault(dedup_key(event), event)
    for line, summary in summaries():
        for event in ADAPTER.adapt(summary, context(line)):
            twin = json_events.get(dedup_key(event))
            if twin is None:
                continue
            for name in ("kind", "outcome", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "protocol",
                         "client_version"):
                assert getattr(event, name) == getattr(twin, name), (event.action, name)


def test_session_shape_and_times() -> None:
    events = expand(
        version="SSH-2.0-Go", credentials=[["root", "root"]], loggedin=["root", "toor"],
        commands=["uname -a; foobarcmd"], unknownCommands=["foobarcmd "],
    )
    assert [e.action for e in events] == [
        "cowrie.session.connect", "cowrie.client.version", "cowrie.login.failed", "cowrie.login.success",
        "cowrie.command.input", "cowrie.command.failed", "cowrie.session.closed",
    ]
    assert events[1].client_version == "SSH-2.0-Go" and events[0].client_version is None
    assert (events[2].outcome, events[3].outcome) == (Outcome.FAILURE, Outcome.SUCCESS)
    assert (events[4].command, events[5].command) == ("uname -a; foobarcmd", "foobarcmd ")
    assert (events[4].outcome, events[5].outcome) == (Outcome.SUCCESS, Outcome.FAILURE)
    assert events[-1].ts.isoformat() == "2026-11-27T21:44:14.786606+00:00"
    assert {e.ts.isoformat() for e in events[:-1]} == {"2026-11-27T21:44:02.767090+00:00"}
    assert all((e.session, e.src_ip, e.dst_port, e.protocol) == ("a357a8d9e100", "198.51.100.7", 2222, "ssh")
               for e in events)


def test_a_pair_that_failed_then_succeeded_gives_both_events() -> None:
    events = expand(credentials=[["root", "toor"]], loggedin=["root", "toor"])
    logins = [(e.action, e.username, e.password) for e in events if e.kind is Kind.LOGIN_ATTEMPT]
    assert logins == [("cowrie.login.failed", "root", "toor"), ("cowrie.login.success", "root", "toor")]


def test_one_distinct_url_and_one_hash_are_paired() -> None:
    digest = "fa7de36ac4b90bfa2599b465ea8564cabefad7f3ba1d4657dd0899adab70b24e"
    downloads = [e for e in expand(urls=["http://x/a", "http://x/a"], hashes=[digest]) if e.url]
    assert [(e.kind, e.sha256, e.warnings) for e in downloads] == [(Kind.FILE_DOWNLOAD, digest, ())] * 2


def test_ambiguous_hashes_are_not_paired() -> None:
    downloads = [e for e in expand(urls=["http://x/a"], hashes=["a" * 64, "b" * 64]) if e.url]
    assert [(e.sha256, e.warnings) for e in downloads] == [(None, (UNPAIRED,))]
    no_hashes = [e for e in expand(urls=["http://x/a", "http://x/b"]) if e.url]
    assert [e.warnings for e in no_hashes] == [(), ()]


def test_hashes_without_urls_give_no_event() -> None:
    assert [e.action for e in expand(hashes=["a" * 64])] == ["cowrie.session.connect", "cowrie.session.closed"]


def test_telnet_summary_without_banner() -> None:
    events = expand(protocol="telnet", hostPort=2223, version=None)
    assert "cowrie.client.version" not in [e.action for e in events]
    assert {e.protocol for e in events} == {"telnet"}


def test_malformed_lists_are_warnings_on_the_connect_event() -> None:
    events = expand(credentials=[["root"], "x", ["a", "b"]], commands="ls", loggedin="root")
    assert [e.action for e in events] == ["cowrie.session.connect", "cowrie.login.failed", "cowrie.session.closed"]
    assert events[0].warnings == (
        "a credentials entry is not a [username, password] pair; skipped",
        "a credentials entry is not a [username, password] pair; skipped",
        "loggedin is not a [username, password] pair; skipped",
        "commands is not a list; ignored",
    )
    assert events[1].warnings == ()


def test_long_lists_are_capped() -> None:
    events = expand(commands=["ls"] * (MAX_ITEMS + 5))
    assert sum(e.action == "cowrie.command.input" for e in events) == MAX_ITEMS
    assert events[0].warnings == (f"commands: 5 entries beyond {MAX_ITEMS} dropped",)


def test_hostile_values_are_cleaned_by_the_cowrie_adapter() -> None:
    events = expand(peerIP="not-an-ip", commands=["\x1b[2Jrm -rf /"], credentials=[[{"u": 1}, "p"]])
    command = next(e for e in events if e.action == "cowrie.command.input")
    assert command.command == "\\x1b[2Jrm -rf /" and command.src_ip is None
    assert "src_ip is not an IP address; dropped" in command.warnings
    login = next(e for e in events if e.action == "cowrie.login.failed")
    assert login.username is None and "username is not text; dropped" in login.warnings


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1], "not a JSON object"),
        ({"peerIP": "1.2.3.4"}, "not a cowrie session summary (needs session and startTime or peerIP)"),
        ({"session": "x"}, "not a cowrie session summary (needs session and startTime or peerIP)"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_and_registration() -> None:
    assert all(detect(summary) for _, summary in summaries())
    cowrie_record = json.loads(JSON_SAMPLE.read_text(encoding="utf-8").splitlines()[0])
    assert not detect(cowrie_record) and not detect("x")
    assert (ADAPTER.name, ADAPTER.summary_of) == ("cowrie-sessions", "cowrie")
