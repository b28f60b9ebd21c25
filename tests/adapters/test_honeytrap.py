"""The honeytrap adapter. There is no captured honeytrap log here: the samples are written from
htm_logJSON.c as honeytrap (downloads as a list) and T-Pot's fork (downloads as numbered keys)
write it, plus T-Pot's logstash renames and an older local-time record; then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.honeytrap import ADAPTER, EMPTY_MD5, MAX_DOWNLOADS, detect
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden
from tests.adapters.sample_run import run_sample, sample_records

SAMPLE = DATA / "samples" / "honeytrap.jsonl"
GOLDEN = DATA / "golden" / "honeytrap.expected.jsonl"
PAYLOAD = {"md5_hash": "8e2b1f6e4f0b5e4fbb7d4b6a0c8d2f11", "sha512_hash": "aa" * 64, "length": 4, "data_hex": "0d0a0d0a"}
BASE: dict[str, Any] = {
    "is_virtual": False, "@timestamp": "2026-11-27T21:50:01Z", "start_time": "2026-11-27T21:50:01Z",
    "end_time": "2026-11-27T21:50:03Z",
    "attack_connection": {"protocol": "tcp", "remote_ip": "198.51.100.7", "remote_port": 40022,
                          "local_ip": "192.0.2.10", "local_port": 8080, "payload": PAYLOAD},
    "operation_mode": 0, "download_count": 0, "download_tries": 0, "downloads": [],
}
DOWNLOAD: dict[str, Any] = {
    "protocol": "tcp", "remote_ip": "203.0.113.5", "remote_port": 21, "local_ip": "192.0.2.10", "local_port": 33210,
    "type": "ftp", "username": "anonymous", "password": "x", "uri": "", "filename": "ssms.exe",
    "payload": {"md5_hash": "14fd8d0ab8f4fb0e5e4d7bc3a4a7e2c1", "sha512_hash": "cc" * 64, "length": 9, "data_hex": "4d5a"},
}


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-honeytrap-01", honeypot="honeytrap", received=RECEIVED, timezone=zone, raw=raw)


def adapt(zone: timezone = UTC, **fields: Any) -> list[Event]:
    record = {key: value for key, value in {**BASE, **fields}.items() if value is not None}
    return ADAPTER.adapt(record, context(json.dumps(record), zone))


def test_sample_matches_golden_file() -> None:
    lines, ignored = run_sample(ADAPTER, SAMPLE, sensor="lab-honeytrap-01", honeypot="honeytrap")
    check_golden(lines, GOLDEN)
    assert ignored == []
    for line, record in sample_records(SAMPLE):
        assert detect(record)
        assert all(event.warnings == () for event in ADAPTER.adapt(record, context(line)))


def test_attack_is_a_connection_with_the_payload_md5() -> None:
    (event,) = adapt()
    assert (event.kind, event.outcome, event.action, event.protocol) == (
        Kind.CONNECTION, Outcome.UNKNOWN, "honeytrap.attack", None,
    )
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 40022, "192.0.2.10", 8080)
    assert (event.transport, event.md5) == ("tcp", PAYLOAD["md5_hash"])
    assert event.ts == datetime(2026, 11, 27, 21, 50, 1, tzinfo=UTC)


def test_payload_bytes_never_reach_a_text_field() -> None:
    (event,) = adapt()
    text_values = [getattr(event, name) for name in ("command", "url", "signature", "user_agent", "client_version")]
    assert all(value is None for value in text_values)
    assert "0d0a0d0a" in (event.raw or "")


def test_empty_payload_has_no_md5() -> None:
    empty = {"md5_hash": EMPTY_MD5, "sha512_hash": "cf" * 64, "length": 0, "data_hex": ""}
    (event,) = adapt(attack_connection={**BASE["attack_connection"], "payload": empty})
    assert event.md5 is None and event.warnings == ()


def test_downloads_list_becomes_file_downloads_with_a_built_url() -> None:
    events = adapt(downloads=[DOWNLOAD, {**DOWNLOAD, "uri": "tftp://203.0.113.9/bot.mips", "payload": {}}])
    assert [event.kind for event in events] == [Kind.CONNECTION, Kind.FILE_DOWNLOAD, Kind.FILE_DOWNLOAD]
    built, given = events[1:]
    assert (built.url, built.md5, built.outcome) == ("ftp://203.0.113.5:21/ssms.exe", DOWNLOAD["payload"]["md5_hash"],
                                                     Outcome.SUCCESS)
    assert (given.url, given.md5, given.outcome) == ("tftp://203.0.113.9/bot.mips", None, Outcome.UNKNOWN)
    # The attacker is the source of every event; the download's own credentials are not a login.
    assert all(event.src_ip == "198.51.100.7" and event.username is None for event in events)


def test_tpot_numbered_download_keys_are_grouped() -> None:
    numbered = {f"{key}_{n}": value for n, download in enumerate([DOWNLOAD, {**DOWNLOAD, "filename": "b"}])
                for key, value in download.items()}
    events = adapt(downloads=numbered)
    assert [event.url for event in events[1:]] == ["ftp://203.0.113.5:21/ssms.exe", "ftp://203.0.113.5:21/b"]


def test_tpot_renamed_addresses_are_read_inside_or_outside_attack_connection() -> None:
    inside = {"protocol": "tcp", "src_ip": "198.51.100.140", "src_port": 39000, "dest_ip": "172.18.0.3",
              "dest_port": 2323, "payload": PAYLOAD}
    (event,) = adapt(attack_connection=inside)
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.140", 39000, "172.18.0.3", 2323)
    record = {"src_ip": "198.51.100.140", "src_port": 39000, "dest_ip": "172.18.0.3", "dest_port": 2323,
              "start_time": "2026-11-27T21:54:00Z", "download_tries": 0}
    (event,) = ADAPTER.adapt(record, context())
    assert (event.src_ip, event.dst_port, event.transport, event.md5) == ("198.51.100.140", 2323, None, None)


def test_virtual_attacks_are_ignored() -> None:
    with pytest.raises(RecordIgnored) as caught:
        adapt(is_virtual=True)
    assert caught.value.reason == "honeytrap virtual attack: a decoded copy of another record"


@pytest.mark.parametrize(
    ("start_time", "expected"),
    [
        ("2016-03-01 12:34:56 CET", datetime(2016, 3, 1, 11, 34, 56, tzinfo=UTC)),  # local: read in the sensor zone
        ("2016-03-01 12:34:56 UTC", datetime(2016, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2016-03-01T12:34:56Z", datetime(2016, 3, 1, 12, 34, 56, tzinfo=UTC)),
    ],
)
def test_start_time_formats(start_time: str, expected: datetime) -> None:
    (event,) = adapt(zone=timezone(timedelta(hours=1)), start_time=start_time)
    assert event.ts == expected


def test_timestamp_falls_back_to_at_timestamp() -> None:
    (event,) = adapt(start_time=None, **{"@timestamp": "2026-11-27T22:00:00Z"})
    assert event.ts == datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def test_bad_values_warn() -> None:
    connection = {**BASE["attack_connection"], "remote_ip": "x", "payload": {"md5_hash": "zz", "length": 3}}
    events = adapt(attack_connection=connection, downloads=[{**DOWNLOAD, "uri": ["x"]}])
    assert events[0].warnings == ("remote_ip is not an IP address; dropped", "payload.md5_hash is not 32 hex digits; dropped")
    assert events[1].warnings == ("remote_ip is not an IP address; dropped", "download uri is not text; dropped")


def test_downloads_are_capped() -> None:
    events = adapt(downloads=[DOWNLOAD] * (MAX_DOWNLOADS + 3))
    assert len(events) == 1 + MAX_DOWNLOADS
    assert events[0].warnings[0] == f"downloads: 3 beyond the first {MAX_DOWNLOADS} dropped"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (["attack_connection"], "not a JSON object"),
        ({"src_ip": "1.2.3.4", "eventid": "x"}, "not a honeytrap attack record"),
        ({"start_time": "2026-11-27T21:54:00Z"}, "not a honeytrap attack record"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_is_specific() -> None:
    assert detect(BASE)
    assert not detect({"src_ip": "1.2.3.4", "dest_port": 22, "eventid": "cowrie.session.connect"})


def test_tpot_type_names_the_honeypot() -> None:
    tpot = RecordContext(sensor="tpot-01", honeypot="tpot", received=RECEIVED, timezone=UTC, raw="{}")
    assert ADAPTER.adapt({**BASE, "type": "Honeytrap"}, tpot)[0].honeypot == "honeytrap"
    assert ADAPTER.adapt(BASE, tpot)[0].honeypot == "tpot"
