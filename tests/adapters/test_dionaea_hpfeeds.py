"""The dionaea-connections and dionaea-capture adapters (dionaea's hpfeeds channels). The samples
quote the mnemosyne fixtures verbatim (first lines) and add payloads written from the emitter
(DinoTools/dionaea modules/python/dionaea/hpfeeds.py); then targeted cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.dionaea_hpfeeds import CAPTURE, CONNECTIONS, detect_capture, detect_connection
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden
from tests.adapters.sample_run import run_sample, sample_records

SAMPLES = DATA / "samples"
GOLDEN = DATA / "golden"
CONNECTION: dict[str, Any] = {
    "connection_type": "accept", "connection_transport": "tcp", "connection_protocol": "smbd",
    "remote_host": "::ffff:198.51.100.7", "remote_port": 49822, "remote_hostname": "",
    "local_host": "::ffff:192.0.2.10", "local_port": 445,
}
DOWNLOAD: dict[str, Any] = {
    "time": "2026-11-27 21:46:12.531190 UTC +0000", "saddr": "198.51.100.7", "sport": "49822",
    "daddr": "192.0.2.10", "dport": "445", "md5": "0724c68f973e4e35391849cfb5259f86", "sha512": "ab" * 64,
    "url": "http://198.51.100.7:1852/psgmioap",
}


def context(raw: str = "", zone: timezone = UTC) -> RecordContext:
    return RecordContext(sensor="lab-dionaea-01", honeypot="dionaea", received=RECEIVED, timezone=zone, raw=raw)


def connection(**fields: Any) -> Event:
    record = {**CONNECTION, **fields}
    (event,) = CONNECTIONS.adapt(record, context(json.dumps(record)))
    return event


def capture(zone: timezone = UTC, **fields: Any) -> Event:
    record = {key: value for key, value in {**DOWNLOAD, **fields}.items() if value is not None}
    (event,) = CAPTURE.adapt(record, context(json.dumps(record), zone))
    return event


@pytest.mark.parametrize(
    ("adapter", "name", "ignored"),
    [
        (CONNECTIONS, "dionaea-connections", ["dionaea listen message: the honeypot opened a port"]),
        (CAPTURE, "dionaea-capture", []),
    ],
    ids=["connections", "capture"],
)
def test_samples_match_golden_files(adapter: Any, name: str, ignored: list[str]) -> None:
    lines, reasons = run_sample(adapter, SAMPLES / f"{name}.jsonl", sensor="lab-dionaea-01", honeypot="dionaea")
    check_golden(lines, GOLDEN / f"{name}.expected.jsonl")
    assert reasons == ignored
    for line, record in sample_records(SAMPLES / f"{name}.jsonl"):
        assert adapter.detect(record)
        if record.get("connection_type") != "listen":
            assert all(event.warnings == () for event in adapter.adapt(record, context(line)))


@pytest.mark.parametrize("connection_type", ["accept", "reject", "connect", "pending"])
def test_connection_types_are_connections_at_receive_time_without_warning(connection_type: str) -> None:
    event = connection(connection_type=connection_type)
    assert (event.kind, event.outcome) == (Kind.CONNECTION, Outcome.UNKNOWN)
    assert event.action == f"dionaea.connection.tcp.{connection_type}"
    assert (event.src_ip, event.src_port, event.dst_ip, event.dst_port) == ("198.51.100.7", 49822, "192.0.2.10", 445)
    assert (event.transport, event.protocol) == ("tcp", "smb")
    assert event.ts == RECEIVED
    assert event.warnings == ()


def test_listen_is_ignored() -> None:
    with pytest.raises(RecordIgnored) as caught:
        connection(connection_type="listen", remote_host="", remote_port=0)
    assert caught.value.reason == "dionaea listen message: the honeypot opened a port"


def test_unknown_connection_type_is_kept_with_a_warning() -> None:
    event = connection(connection_type="teleport")
    assert event.kind is Kind.CONNECTION
    assert event.action == "dionaea.connection.tcp.teleport"
    assert event.warnings == ("unknown dionaea connection_type; kept as a connection",)


def test_capture_is_a_successful_download_with_url_and_md5() -> None:
    event = capture()
    assert (event.kind, event.outcome, event.action) == (Kind.FILE_DOWNLOAD, Outcome.SUCCESS, "dionaea.download.complete")
    assert (event.url, event.md5, event.sha256) == (DOWNLOAD["url"], DOWNLOAD["md5"], None)
    assert (event.src_port, event.dst_port) == (49822, 445)  # strings on the wire
    assert event.warnings == ()  # sha512 has no field and is not worth a warning


def test_capture_time_label_is_ignored_and_the_clock_read_in_the_sensor_zone() -> None:
    event = capture(zone=timezone(timedelta(hours=1)))
    assert event.ts == datetime(2026, 11, 27, 20, 46, 12, 531190, tzinfo=UTC)


def test_capture_without_time_uses_receive_time_silently() -> None:
    event = capture(time=None)
    assert (event.ts, event.warnings) == (RECEIVED, ())


def test_capture_with_unreadable_time_warns() -> None:
    event = capture(time="yesterday at noon")
    assert event.ts == RECEIVED
    assert event.warnings == ("no usable timestamp; receive time used",)


def test_capture_md5_is_lowercased_and_a_bad_one_dropped() -> None:
    assert capture(md5="0724C68F973E4E35391849CFB5259F86").md5 == "0724c68f973e4e35391849cfb5259f86"
    event = capture(md5="not-an-md5", sport="x")
    assert event.md5 is None
    assert event.warnings == ("md5 is not 32 hex digits; dropped", "sport is not a port number; dropped")


@pytest.mark.parametrize(
    ("adapter", "record", "reason"),
    [
        (CONNECTIONS, "accept", "not a JSON object"),
        (CONNECTIONS, {"remote_host": "1.2.3.4"}, "not a dionaea.connections payload"),
        (CAPTURE, None, "not a JSON object"),
        (CAPTURE, {"saddr": "1.2.3.4", "uuid": "x", "opnum": 4}, "not a dionaea.capture payload"),
    ],
)
def test_rejections(adapter: Any, record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        adapter.adapt(record, context())
    assert caught.value.reason == reason


def test_detect_tells_the_channels_apart() -> None:
    assert detect_connection(CONNECTION) and not detect_capture(CONNECTION)
    assert detect_capture(DOWNLOAD) and not detect_connection(DOWNLOAD)
    dcerpc = {"uuid": "4b324fc8-1670-01d3-1278-5a47bf6ee188", "opnum": 31, "saddr": "1.2.3.4", "sport": "1", "daddr": "x"}
    assert not detect_capture(dcerpc) and not detect_connection(dcerpc)
