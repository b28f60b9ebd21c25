"""The cowrie adapter: the golden file built from real cowrie 3.1.4 records, then synthetic
records for what the sample lacks (older cowrie, rare event ids, hostile values)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from honeyatlas.adapters.cowrie import ADAPTER
from honeyatlas.errors import RecordRejected
from honeyatlas.event import FIELD_LIMITS, Event, Flag, Kind, Outcome
from tests.adapters.golden import DATA, RECEIVED, check_golden, context, event_line

SAMPLE = DATA / "samples" / "cowrie.json"
GOLDEN = DATA / "golden" / "cowrie.expected.jsonl"
BASE: dict[str, Any] = {
    "session": "044e92401ecb",
    "protocol": "ssh",
    "src_ip": "198.51.100.7",
    "src_port": 55782,
    "dst_ip": "192.0.2.10",
    "dst_port": 2222,
    "sensor": "lab-cowrie-01",
    "timestamp": "2026-11-27T21:42:54.275704Z",
}


def adapt_one(**fields: Any) -> Event:
    record = {**BASE, **fields}
    record = {key: value for key, value in record.items() if value is not None}
    events = ADAPTER.adapt(record, context(json.dumps(record)))
    assert len(events) == 1
    return events[0]


def sample_records() -> list[tuple[str, dict[str, Any]]]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [(line, msgspec.json.decode(line)) for line in lines]


def test_sample_matches_golden_file() -> None:
    lines = []
    for line, record in sample_records():
        lines.extend(event_line(event) for event in ADAPTER.adapt(record, context(line)))
    check_golden(lines, GOLDEN)


def test_sample_keeps_raw_and_context_and_never_warns() -> None:
    for line, record in sample_records():
        (event,) = ADAPTER.adapt(record, context(line))
        assert event.raw == line
        assert event.sensor == "lab-cowrie-01" and event.honeypot == "cowrie"
        assert event.ingest_ts == RECEIVED
        assert event.action == record["eventid"]
        assert event.warnings == ()


EXPECTED_KINDS = {
    "cowrie.session.connect": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.session.closed": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.version": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.kex": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.var": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.size": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.fingerprint": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.client.malformed_packet": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.login.success": (Kind.LOGIN_ATTEMPT, Outcome.SUCCESS),
    "cowrie.login.failed": (Kind.LOGIN_ATTEMPT, Outcome.FAILURE),
    "cowrie.command.input": (Kind.COMMAND, Outcome.SUCCESS),
    "cowrie.command.success": (Kind.COMMAND, Outcome.SUCCESS),
    "cowrie.command.failed": (Kind.COMMAND, Outcome.FAILURE),
    "cowrie.command.chpasswd": (Kind.COMMAND, Outcome.UNKNOWN),
    "cowrie.session.input": (Kind.COMMAND, Outcome.UNKNOWN),
    "cowrie.session.file_download": (Kind.FILE_DOWNLOAD, Outcome.SUCCESS),
    "cowrie.session.file_download.failed": (Kind.FILE_DOWNLOAD, Outcome.FAILURE),
    "cowrie.session.file_upload": (Kind.FILE_UPLOAD, Outcome.SUCCESS),
    "cowrie.session.params": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.log.open": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.log.closed": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.telnet.option": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.telnet.error": (Kind.CONNECTION, Outcome.UNKNOWN),
    "cowrie.telnet.exploit_attempt": (Kind.EXPLOIT, Outcome.UNKNOWN),
    "cowrie.telnet.exploit_success": (Kind.EXPLOIT, Outcome.SUCCESS),
    "cowrie.direct-tcpip.request": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.direct-tcpip.data": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.direct-tcpip.redirect": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.direct-tcpip.tunnel": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.direct-tcpip.ja4": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.direct-tcpip.ja4h": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.tunnelproxy-tcpip.data": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.proxy.backend_connected": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.reversedns.connect": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.reversedns.forward": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.virustotal.scanfile": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.greynoise.result": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.urlhaus.submitted": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.malwarebazaar.submitted": (Kind.OTHER, Outcome.UNKNOWN),
    "cowrie.abuseipdb.reportedip": (Kind.OTHER, Outcome.UNKNOWN),
}


@pytest.mark.parametrize(("eventid", "expected"), sorted(EXPECTED_KINDS.items()))
def test_every_known_eventid_has_its_kind_and_no_warning(eventid: str, expected: tuple[Kind, Outcome]) -> None:
    event = adapt_one(eventid=eventid)
    assert (event.kind, event.outcome) == expected
    assert event.action == eventid
    assert event.warnings == ()


def test_sample_eventids_are_all_in_the_table() -> None:
    assert {record["eventid"] for _, record in sample_records()} <= EXPECTED_KINDS.keys()


def test_unknown_eventid_is_other_with_a_warning() -> None:
    event = adapt_one(eventid="cowrie.quantum.teleport")
    assert event.kind is Kind.OTHER
    assert event.action == "cowrie.quantum.teleport"
    assert event.warnings == ("unknown cowrie eventid; kept as kind other",)


def test_pubkey_login_keeps_password_empty_and_says_so() -> None:
    fingerprint = "6a:4f:2d:9e:01:77:b3:c8:5e:aa:10:42:cd:03:9f:11"
    event = adapt_one(
        eventid="cowrie.login.success", username="deploy", fingerprint=fingerprint,
        key="ssh-rsa AAAAB3NzaC1yc2E", type="ssh-rsa",
    )
    assert event.kind is Kind.LOGIN_ATTEMPT and event.outcome is Outcome.SUCCESS
    assert event.username == "deploy"
    assert event.password is None
    assert event.warnings == (f"public-key login, key fingerprint {fingerprint}; no password",)


def test_pubkey_fingerprint_of_unknown_shape_is_not_quoted() -> None:
    event = adapt_one(eventid="cowrie.login.failed", username="root", fingerprint="truncated <b>x</b>")
    assert event.password is None
    assert event.warnings == ("public-key login; no password",)
    assert Flag.TRUNCATED not in event.flags


def test_failed_download_keeps_url_and_failure() -> None:
    event = adapt_one(
        eventid="cowrie.session.file_download.failed", url="http://203.0.113.5/bins/x86", error="timeout",
    )
    assert event.kind is Kind.FILE_DOWNLOAD and event.outcome is Outcome.FAILURE
    assert event.url == "http://203.0.113.5/bins/x86"
    assert event.sha256 is None


def test_download_with_bad_shasum_drops_it_with_a_warning() -> None:
    event = adapt_one(eventid="cowrie.session.file_download", url="http://x/y", shasum="not-a-hash")
    assert event.sha256 is None
    assert event.warnings == ("shasum is not a SHA-256 digest; dropped",)


def test_download_sha256_is_lowercased() -> None:
    digest = "FA7DE36AC4B90BFA2599B465EA8564CABEFAD7F3BA1D4657DD0899ADAB70B24E"
    event = adapt_one(eventid="cowrie.session.file_download", url="http://x/y", shasum=digest)
    assert event.sha256 == digest.lower()


def test_telnet_exploit_attempt_puts_cve_in_signature() -> None:
    event = adapt_one(
        eventid="cowrie.telnet.exploit_attempt", protocol="telnet", dst_port=2223,
        cve="CVE-2026-24061", name="USER", value="-f root",
    )
    assert event.kind is Kind.EXPLOIT and event.outcome is Outcome.UNKNOWN
    assert event.signature == "CVE-2026-24061"
    assert event.protocol == "telnet"


def test_telnet_exploit_success_keeps_user_and_injected_command() -> None:
    event = adapt_one(
        eventid="cowrie.telnet.exploit_success", cve="CVE-2026-24061", username="root",
        original_username="-f root", attempted_command="id",
    )
    assert (event.kind, event.outcome) == (Kind.EXPLOIT, Outcome.SUCCESS)
    assert (event.signature, event.username, event.command) == ("CVE-2026-24061", "root", "id")


def test_direct_tcpip_target_is_a_url_not_the_destination() -> None:
    event = adapt_one(
        eventid="cowrie.direct-tcpip.request", dst_ip="93.184.216.34", dst_port=443,
        orig_ip="10.0.0.1", orig_port=1234,
    )
    assert event.kind is Kind.OTHER
    assert event.dst_ip is None and event.dst_port is None
    assert event.url == "tcp://93.184.216.34:443"
    assert event.src_ip == "198.51.100.7"


def test_direct_tcpip_ipv6_and_hostname_targets() -> None:
    assert adapt_one(eventid="cowrie.direct-tcpip.ja4", dst_ip="2001:db8::1", dst_port=443).url == (
        "tcp://[2001:db8::1]:443"
    )
    event = adapt_one(eventid="cowrie.direct-tcpip.request", dst_ip="mail.example.org", dst_port="25")
    assert event.url == "tcp://mail.example.org:25"
    assert adapt_one(eventid="cowrie.direct-tcpip.request", dst_ip=None, dst_port=None).url is None


def test_reversedns_forward_destination_is_not_the_honeypot() -> None:
    event = adapt_one(eventid="cowrie.reversedns.forward", dst_ip="93.184.216.34", ptr="example.org")
    assert event.dst_ip is None


def test_cowrie_2x_record_with_duration_and_bytes_version() -> None:
    closed = adapt_one(eventid="cowrie.session.closed", duration=12.5, protocol=None)
    assert closed.kind is Kind.CONNECTION and closed.warnings == ()
    assert closed.protocol == "ssh"  # inferred from port 2222
    version = adapt_one(eventid="cowrie.client.version", version="b'SSH-2.0-libssh_0.9.6'")
    assert version.client_version == "SSH-2.0-libssh_0.9.6"
    assert adapt_one(eventid="cowrie.client.version", version='b"SSH-2.0-Go"').client_version == "SSH-2.0-Go"
    assert adapt_one(eventid="cowrie.client.version", version="b'").client_version == "b'"


@pytest.mark.parametrize(
    ("eventid", "dst_port", "expected"),
    [
        ("cowrie.session.connect", 22, "ssh"),
        ("cowrie.session.connect", 2223, "telnet"),
        ("cowrie.telnet.option", 8023, "telnet"),
        ("cowrie.direct-tcpip.request", 23, "ssh"),
        ("cowrie.session.connect", 8080, None),
    ],
)
def test_protocol_inferred_when_absent(eventid: str, dst_port: int, expected: str | None) -> None:
    assert adapt_one(eventid=eventid, protocol=None, dst_port=dst_port).protocol == expected


def test_ipv4_mapped_address_is_unwrapped_and_string_port_accepted() -> None:
    event = adapt_one(eventid="cowrie.session.connect", src_ip="::ffff:203.0.113.9", src_port="40022")
    assert (event.src_ip, event.src_port) == ("203.0.113.9", 40022)
    assert event.warnings == ()


def test_bad_address_and_port_are_warnings_not_rejections() -> None:
    event = adapt_one(eventid="cowrie.session.connect", src_ip="999.1.1.1", src_port=70000, dst_ip=["x"])
    assert (event.src_ip, event.src_port, event.dst_ip) == (None, None, None)
    assert event.warnings == (
        "src_ip is not an IP address; dropped",
        "src_port is not a port number; dropped",
        "dst_ip is not an IP address; dropped",
    )


def test_record_sensor_is_ignored() -> None:
    event = adapt_one(eventid="cowrie.session.connect", sensor="someone-else")
    assert event.sensor == "lab-cowrie-01"


def test_hostile_username_passes_through_as_text() -> None:
    payload = "<img src=x onerror=alert(1)>"
    event = adapt_one(eventid="cowrie.login.failed", username=payload, password="' OR 1=1 --")
    assert event.username == payload
    assert event.password == "' OR 1=1 --"
    assert event.warnings == ()


def test_control_bytes_are_escaped() -> None:
    event = adapt_one(eventid="cowrie.command.input", input="clear\x1b[2J\x00done")
    assert event.command == "clear\\x1b[2J\\x00done"
    assert event.flags == ()


def test_huge_command_is_truncated_and_flagged() -> None:
    event = adapt_one(eventid="cowrie.command.input", input="A" * 100_000)
    assert event.command == "A" * FIELD_LIMITS["command"]
    assert Flag.TRUNCATED in event.flags
    assert f"command truncated to {FIELD_LIMITS['command']} characters" in event.warnings


def test_text_field_holding_a_container_is_dropped_with_a_warning() -> None:
    event = adapt_one(eventid="cowrie.login.failed", username={"a": 1}, password=["x"])
    assert event.username is None and event.password is None
    assert event.warnings == ("username is not text; dropped", "password is not text; dropped")


def test_missing_or_bad_timestamp_uses_receive_time() -> None:
    event = adapt_one(eventid="cowrie.session.connect", timestamp="yesterday")
    assert event.ts == RECEIVED
    assert event.warnings == ("no usable timestamp; receive time used",)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ("cowrie.session.connect", "not a JSON object"),
        (None, "not a JSON object"),
        ({"src_ip": "1.2.3.4"}, "missing eventid"),
        ({"eventid": None}, "missing eventid"),
        ({"eventid": 42}, "not a cowrie record"),
        ({"eventid": "dionaea.connection"}, "not a cowrie record"),
        ({"eventid": "Cowrie.session.connect"}, "not a cowrie record"),
    ],
)
def test_rejections(record: Any, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.adapt(record, context())
    assert caught.value.reason == reason


def test_adapter_is_named_cowrie() -> None:
    assert ADAPTER.name == "cowrie"
