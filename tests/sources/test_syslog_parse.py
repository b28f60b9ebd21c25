"""syslog_parse: RFC 5424 / RFC 3164 headers and RFC 6587 framing, with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honeyatlas.sources.syslog import parse_listen
from honeyatlas.sources.syslog_parse import FramingError, TcpFramer, parse_message
from tests.conftest import SAMPLES

CEF = (SAMPLES / "cowrie-cef.txt").read_bytes().splitlines()[0]


# --- RFC 5424 -------------------------------------------------------------------------------


def test_rfc5424_example_with_bom() -> None:
    # RFC 5424 §6.5, example 1
    m = parse_message(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed")
    assert (m.dialect, m.facility, m.severity) == ("rfc5424", 4, 2)
    assert (m.timestamp, m.hostname, m.app_name, m.procid, m.msgid) == (
        "2003-10-11T22:14:15.003Z", "mymachine.example.com", "su", None, "ID47")
    assert m.structured_data == {} and m.body == b"'su root' failed"


def test_rfc5424_structured_data_and_escapes() -> None:
    # RFC 5424 §6.5, example 3, plus the three escapes of PARAM-VALUE
    m = parse_message(
        b'<165>1 2003-10-11T22:14:15.003Z host evntslog 42 ID47 [exampleSDID@32473 iut="3" eventSource='
        b'"Application" eventID="1011"][examplePriority@32473 class="high" q="a\\"b\\\\c\\]d"] ' + CEF
    )
    assert m.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high", "q": 'a"b\\c]d'},
    }
    assert m.procid == "42" and m.body == CEF


def test_rfc5424_nil_fields_and_no_message() -> None:
    m = parse_message(b"<13>1 - - - - - -")
    assert m.dialect == "rfc5424" and m.timestamp is m.hostname is m.app_name is m.procid is m.msgid is None
    assert m.body == b""


def test_rfc5424_malformed_structured_data_stays_in_the_body() -> None:
    m = parse_message(b'<13>1 2024-01-01T00:00:00Z h a p m [id x="unterminated')
    assert m.dialect == "rfc5424" and m.structured_data == {} and m.body == b'[id x="unterminated'


def test_version_without_a_timestamp_is_not_rfc5424() -> None:
    m = parse_message(b"<13>1 apple a day")
    assert m.dialect == "bare" and m.body == b"1 apple a day"


# --- RFC 3164 and the variants real software sends --------------------------------------------


def test_rfc3164_example() -> None:
    # RFC 3164 §5.4, example 1
    m = parse_message(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert (m.dialect, m.facility, m.severity, m.timestamp, m.hostname, m.app_name) == (
        "rfc3164", 4, 2, "Oct 11 22:14:15", "mymachine", "su")
    assert m.body == b"'su root' failed for lonvick on /dev/pts/8"


@pytest.mark.parametrize(
    ("wire", "timestamp", "hostname", "app_name", "procid"),
    [
        (b"<13>Jan  5 10:00:00 sensor-1 cowrie[123]: ", "Jan  5 10:00:00", "sensor-1", "cowrie", "123"),
        (b"<13>Jan 5 10:00:00 sensor-1 cowrie: ", "Jan  5 10:00:00", "sensor-1", "cowrie", None),  # unpadded day
        (b"<13>Jan  5 10:00:00.123 sensor-1 ", "Jan  5 10:00:00", "sensor-1", None, None),  # fraction, no TAG
        (b"<13>Jan  5 2026 10:00:00 sensor-1 cowrie: ", "2026-01-05T10:00:00", "sensor-1", "cowrie", None),  # year
        (b"<13>2026-01-05T10:00:00.5+01:00 sensor-1 cowrie: ", "2026-01-05T10:00:00.5+01:00", "sensor-1", "cowrie", None),
        (b"<13>Jan  5 10:00:00 cowrie: ", "Jan  5 10:00:00", None, "cowrie", None),  # no HOSTNAME
        (b"<13>Jan  5 10:00:00 ", "Jan  5 10:00:00", None, None, None),  # neither
        (b"Jan  5 10:00:00 sensor-1 cowrie: ", "Jan  5 10:00:00", "sensor-1", "cowrie", None),  # no PRI
    ],
)
def test_rfc3164_variants_keep_a_cef_body_whole(
    wire: bytes, timestamp: str, hostname: str | None, app_name: str | None, procid: str | None
) -> None:
    m = parse_message(wire + CEF)
    assert m.dialect == "rfc3164"
    assert (m.timestamp, m.hostname, m.app_name, m.procid) == (timestamp, hostname, app_name, procid)
    assert m.body == CEF


def test_json_body_straight_after_the_hostname_is_not_a_tag() -> None:
    m = parse_message(b'<13>Jan  5 10:00:00 sensor-1 {"eventid": "cowrie.login.failed"}')
    assert m.hostname == "sensor-1" and m.app_name is None and m.body == b'{"eventid": "cowrie.login.failed"}'


@pytest.mark.parametrize(
    ("wire", "app_name", "body"),
    [
        (b'<14>{"logtype": 3001}\x00', None, b'{"logtype": 3001}'),  # Python SysLogHandler, no ident
        (b'<14>opencanaryd: {"logtype": 3001}\x00', "opencanaryd", b'{"logtype": 3001}'),  # with ident
        (b"<14>tag: plain text", None, b"tag: plain text"),  # no time: not a header (RFC 3164 4.3.3)
        (b"no pri at all\n", None, b"no pri at all"),
        (b"<999>bad pri", None, b"<999>bad pri"),
    ],
)
def test_bare_messages(wire: bytes, app_name: str | None, body: bytes) -> None:
    m = parse_message(wire)
    assert m.dialect == "bare" and m.timestamp is None and m.hostname is None
    assert m.app_name == app_name and m.body == body


def test_pri_decodes_facility_and_severity() -> None:
    assert (parse_message(b"<191>x").facility, parse_message(b"<191>x").severity) == (23, 7)
    assert (parse_message(b"<0>x").facility, parse_message(b"<0>x").severity) == (0, 0)


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    m = parse_message(data)
    assert m.body in data or m.dialect == "rfc5424"  # a body is a slice of the input (5424 may drop a BOM)


@settings(max_examples=300)
@given(
    prefix=st.sampled_from([b"<13>1 ", b"<13>Jan  5 10:00:00 h t: ", b"<13>", b"<", b"<13>1 2024-01-01T00:00:00Z h a p m ["]),
    rest=st.binary(max_size=256),
)
def test_parse_never_raises_on_header_shaped_garbage(prefix: bytes, rest: bytes) -> None:
    parse_message(prefix + rest)


_token = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="-"), min_size=1, max_size=20)
_sd_name = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=' ="]'), min_size=1, max_size=12)


@given(
    pri=st.integers(0, 191),
    hostname=_token, app_name=_token, procid=_token, msgid=_token,
    sd=st.dictionaries(_sd_name, st.dictionaries(_sd_name, st.text(max_size=20), max_size=3), max_size=3),
    body=st.binary(max_size=100).filter(lambda b: not b.startswith(b"\xef\xbb\xbf")),
)
def test_rfc5424_round_trip(
    pri: int, hostname: str, app_name: str, procid: str, msgid: str, sd: dict[str, dict[str, str]], body: bytes
) -> None:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    elements = "".join(
        f"[{sd_id}" + "".join(f' {k}="{escape(v)}"' for k, v in params.items()) + "]" for sd_id, params in sd.items()
    ) or "-"
    header = f"<{pri}>1 2026-11-27T21:42:54.217629Z {hostname} {app_name} {procid} {msgid} {elements} "
    wire = header.encode() + b"\xef\xbb\xbf" + body
    m = parse_message(wire)
    assert (m.facility, m.severity) == (pri >> 3, pri & 7)
    assert (m.hostname, m.app_name, m.procid, m.msgid) == (hostname, app_name, procid, msgid)
    assert m.structured_data == sd
    assert m.body == body.rstrip(b"\r\n\x00")


# --- RFC 6587 framing ----------------------------------------------------------------------------


def test_framing_is_detected_per_message() -> None:
    framer = TcpFramer(1024)
    stream = b"12 <13>1 - - - " + b"<13>lf one\n" + b"5 <1>ab" + b"<13>nul one\x00\n" + b"<13>crlf\r\n"
    assert framer.feed(stream) == [b"<13>1 - - - ", b"<13>lf one", b"<1>ab", b"<13>nul one", b"<13>crlf"]
    assert framer.error is None


def test_framing_across_arbitrary_splits() -> None:
    messages = [b"<13>" + CEF, b"<14>" + b"x" * 300, b"<15>1 - - - - - - y"]
    stream = b"".join(b"%d %s" % (len(m), m) if i % 2 else m + b"\n" for i, m in enumerate(messages * 3))
    for size in (1, 2, 7, 100, len(stream)):
        framer = TcpFramer(4096)
        out = [m for start in range(0, len(stream), size) for m in framer.feed(stream[start : start + size])]
        assert out == messages * 3 and framer.close() is None and framer.error is None


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"12x <13>abc", "bad_octet_count"),
        (b"0 ", "bad_octet_count"),
        (b"99999999999 ", "bad_octet_count"),  # more digits than the limit allows
        (b"2000 " + b"a" * 10, "oversize"),
        (b"<13>" + b"a" * 1100, "oversize"),  # LF framing, no LF within the limit
    ],
)
def test_framing_errors_are_sticky(stream: bytes, reason: str) -> None:
    framer = TcpFramer(1024)
    assert framer.feed(stream) == []
    assert isinstance(framer.error, FramingError) and framer.error.reason == reason
    assert framer.feed(b"<13>fine\n") == []


def test_messages_before_an_error_are_returned() -> None:
    framer = TcpFramer(1024)
    assert framer.feed(b"<13>good\n3x bad") == [b"<13>good"]
    assert framer.error is not None


def test_end_of_stream() -> None:
    unterminated = TcpFramer(1024)
    unterminated.feed(b"<13>no newline at the end")
    assert unterminated.close() == b"<13>no newline at the end" and unterminated.error is None
    cut = TcpFramer(1024)
    cut.feed(b"50 <13>only part")
    assert cut.close() is None and cut.error is not None and cut.error.reason == "truncated"


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_framer_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    framer = TcpFramer(256)
    for chunk in chunks:
        for message in framer.feed(chunk):
            assert 0 < len(message) <= 256
    framer.close()


# --- listen addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "host", "port", "fmt", "sensor"),
    [
        ("udp:0.0.0.0:514", "udp", "0.0.0.0", 514, "auto", None),
        ("tcp:127.0.0.1:5514", "tcp", "127.0.0.1", 5514, "auto", None),
        ("tls:[::]:6514", "tls", "::", 6514, "auto", None),
        ("tcp:syslog.example.org:0?format=cowrie-cef&sensor=edge-01", "tcp", "syslog.example.org", 0, "cowrie-cef", "edge-01"),
    ],
)
def test_parse_listen(text: str, transport: str, host: str, port: int, fmt: str, sensor: str | None) -> None:
    address = parse_listen(text)
    assert (address.transport, address.host, address.port, address.format, address.sensor) == (
        transport, host, port, fmt, sensor)
    assert str(address) == text.split("?")[0]


@pytest.mark.parametrize(
    "text",
    ["tcp:127.0.0.1", "http:1.2.3.4:80", "tcp:::1:514", "udp:host:70000", "tcp:h:1?color=red", "tcp:h:1?sensor=",
     "tcp:h:1?sensor=a&sensor=b", "tcp:h:1?junk", ""],
)
def test_parse_listen_refuses_with_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syslog listen address"):
        parse_listen(text)
