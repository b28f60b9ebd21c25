"""Syslog on the wire, without I/O: TCP framing (RFC 6587) and message headers (RFC 5424, RFC 3164).

`TcpFramer` cuts a TCP byte stream into messages. Each message picks its own framing:
octet counting (`LEN SP MSG`, RFC 6587 §3.4.1, the only one RFC 5425 TLS allows) when it
starts with a digit, otherwise non-transparent framing ended by LF or NUL (§3.4.2; Python's
`SysLogHandler` ends TCP messages with NUL and no LF). A framing error is sticky: the stream
cannot be resynchronised, so the caller closes the connection.

`parse_message` reads the header of one message and never raises, whatever the bytes:

    RFC 5424   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v"...] [BOM]MSG
    RFC 3164   <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG
    bare       <PRI>MSG, or MSG with no PRI at all

and the variants real software sends: no PRI, an RFC 3339 time or a year in a 3164 header
(rsyslog's forward format, network gear), no HOSTNAME, no TAG, a body that is JSON or CEF
straight after the header. A 3164 header without a recognisable time is not a header (RFC
3164 §4.3.3): everything after PRI is the body, except a leading `TAG: ` before a JSON or
CEF body (Python's `SysLogHandler` with an `ident`). Ambiguity the format leaves open: in
`Jan  5 10:00:00 word rest`, `word` is taken as the HOSTNAME.

What must not live here: sensor attribution, decoding the body, counting; see syslog.py.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

MAX_PRI = 191  # facility 23 * 8 + severity 7
UTF8_BOM = b"\xef\xbb\xbf"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_PRI = re.compile(rb"<(\d{1,3})>")
_VERSION = re.compile(rb"([1-9]\d{0,2}) ")
_RFC3339 = re.compile(rb"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:?\d\d)?")
_BSD_TIME = re.compile(
    rb"(" + b"|".join(m.encode() for m in _MONTHS) + rb") {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d:\d\d:\d\d)(?:\.\d{1,9})?(?= |$)"
)
_ISO_3164 = re.compile(_RFC3339.pattern + rb"(?= |$)")
_TAG = re.compile(rb"([A-Za-z0-9_.@/-]{1,48})(?:\[([^\]\s]{0,128})\])?:(?: |$)")
_BODY_START = re.compile(rb"\{|(?:CEF|LEEF):\d")
_SD_NAME = re.compile(rb'[^ ="\]]{1,32}')
_TRAILER = b"\r\n\x00"
_DELIMITER = re.compile(rb"[\n\x00]")


class SyslogMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One syslog message, header split from the body. Header text is decoded UTF-8 (bad
    bytes replaced); `None` where the header has no such field or says NILVALUE ("-")."""

    dialect: Literal["rfc5424", "rfc3164", "bare"]
    facility: int | None = None
    severity: int | None = None
    # The header time as text an adapter can read: RFC 3339 as sent, or "Mmm dd hh:mm:ss"
    # (day space-padded, no year, no zone) for a classic 3164 time; a 3164 time with a year
    # becomes "YYYY-MM-DDThh:mm:ss" without a zone.
    timestamp: str | None = None
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = {}
    body: bytes = b""  # the MSG part, BOM removed


def _text(value: bytes) -> str | None:
    return None if value in (b"", b"-") else value.decode("utf-8", "replace")


def parse_message(data: bytes) -> SyslogMessage:
    """Split one syslog message into header fields and body. Never raises."""
    data = data.rstrip(_TRAILER)
    facility = severity = None
    pos = 0
    pri = _PRI.match(data)
    if pri is not None and int(pri.group(1)) <= MAX_PRI:
        value = int(pri.group(1))
        facility, severity = value >> 3, value & 7
        pos = pri.end()
    version = _VERSION.match(data, pos)
    if version is not None:
        parsed = _rfc5424(data, version.end(), facility, severity)
        if parsed is not None:
            return parsed
    return _rfc3164(data, pos, facility, severity)


def _rfc5424(data: bytes, pos: int, facility: int | None, severity: int | None) -> SyslogMessage | None:
    fields: list[bytes] = []
    for _ in range(5):  # TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
        end = data.find(b" ", pos)
        if end < 0:
            fields.append(data[pos:])
            pos = len(data)
            break
        fields.append(data[pos:end])
        pos = end + 1
    if fields[0] != b"-" and _RFC3339.fullmatch(fields[0]) is None:
        return None  # "<13>1 something": not an RFC 5424 header after all
    fields += [b""] * (5 - len(fields))
    structured: dict[str, dict[str, str]] = {}
    if data[pos : pos + 1] == b"-":
        pos += 1
    elif data[pos : pos + 1] == b"[":
        found = _structured_data(data, pos)
        if found is not None:
            structured, pos = found
        # else: malformed SD; keep it as part of the body rather than lose it
    if data[pos : pos + 1] == b" ":
        pos += 1
    body = data[pos:]
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM) :]
    return SyslogMessage(
        dialect="rfc5424", facility=facility, severity=severity, timestamp=_text(fields[0]),
        hostname=_text(fields[1]), app_name=_text(fields[2]), procid=_text(fields[3]), msgid=_text(fields[4]),
        structured_data=structured, body=body,
    )


def _structured_data(data: bytes, pos: int) -> tuple[dict[str, dict[str, str]], int] | None:
    """SD-ELEMENTs from `pos`; None when malformed. Values unescape `\\"`, `\\\\` and `\\]`."""
    elements: dict[str, dict[str, str]] = {}
    while data[pos : pos + 1] == b"[":
        name = _SD_NAME.match(data, pos + 1)
        if name is None:
            return None
        params: dict[str, str] = {}
        pos = name.end()
        while data[pos : pos + 1] == b" ":
            key = _SD_NAME.match(data, pos + 1)
            if key is None or data[key.end() : key.end() + 2] != b'="':
                return None
            pos = key.end() + 2
            value = bytearray()
            while True:
                if pos >= len(data):
                    return None
                char = data[pos]
                if char == 0x5C and data[pos + 1 : pos + 2] in (b'"', b"\\", b"]"):  # backslash escape
                    value += data[pos + 1 : pos + 2]
                    pos += 2
                elif char == 0x22:  # closing quote
                    pos += 1
                    break
                else:
                    value.append(char)
                    pos += 1
            params.setdefault(key.group().decode("utf-8", "replace"), value.decode("utf-8", "replace"))
        if data[pos : pos + 1] != b"]":
            return None
        pos += 1
        elements.setdefault(name.group().decode("utf-8", "replace"), params)
    return elements, pos


def _bsd_timestamp(match: re.Match[bytes]) -> str:
    month, day, year, clock = (g.decode() if g else None for g in match.groups())
    if year is not None:
        return f"{year}-{_MONTHS.index(month) + 1:02d}-{int(day or 0):02d}T{clock}"  # type: ignore[arg-type]
    return f"{month} {int(day or 0):>2} {clock}"


def _rfc3164(data: bytes, pos: int, facility: int | None, severity: int | None) -> SyslogMessage:
    bsd = _BSD_TIME.match(data, pos)
    iso = None if bsd is not None else _ISO_3164.match(data, pos)
    if bsd is None and iso is None:
        body = data[pos:]
        app_name = procid = None
        tag = _TAG.match(body)
        if tag is not None and _BODY_START.match(body, tag.end()):  # "ident: {json}" with no header
            app_name, procid, body = _text(tag.group(1)), _text(tag.group(2) or b""), body[tag.end() :]
        return SyslogMessage(
            dialect="bare", facility=facility, severity=severity, app_name=app_name, procid=procid, body=body
        )
    timestamp = _bsd_timestamp(bsd) if bsd is not None else iso.group().decode()  # type: ignore[union-attr]
    rest = data[(bsd or iso).end() :].lstrip(b" ")  # type: ignore[union-attr]
    hostname = app_name = procid = None
    if not _BODY_START.match(rest):
        token, _, after = rest.partition(b" ")
        tag = _TAG.fullmatch(token + b" ") if token.endswith(b":") else None
        if tag is None:  # HOSTNAME, then an optional TAG
            hostname, rest = _text(token), after.lstrip(b" ")
            tag = None if _BODY_START.match(rest) else _TAG.match(rest)
        if tag is not None:
            app_name, procid = _text(tag.group(1)), _text(tag.group(2) or b"")
            rest = rest[tag.end() :]
    return SyslogMessage(
        dialect="rfc3164", facility=facility, severity=severity, timestamp=timestamp, hostname=hostname,
        app_name=app_name, procid=procid, body=rest,
    )


class FramingError(Exception):
    """The TCP stream cannot be cut into messages any more; `reason` is a stable metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TcpFramer:
    """Cuts one connection's bytes into syslog messages; holds at most one partial message.

    `feed` returns the messages completed so far. After a framing error `error` is set,
    `feed` returns nothing more, and the caller should close the connection.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._digits = len(str(max_message_bytes))
        self._buffer = bytearray()
        self.error: FramingError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            return []
        self._buffer += data
        messages: list[bytes] = []
        try:
            while (message := self._next()) is not None:
                if message:
                    messages.append(message)
        except FramingError as exc:
            self.error = exc
            self._buffer.clear()
        return messages

    def close(self) -> bytes | None:
        """At end of stream: the last LF-framed message a sender did not terminate, if any.
        A cut octet-counted message sets `error` (reason "truncated")."""
        rest = bytes(self._buffer).lstrip(_TRAILER)
        self._buffer.clear()
        if self.error is not None or not rest:
            return None
        if rest[:1].isdigit():
            self.error = FramingError("truncated", f"stream ended inside an octet-counted message ({len(rest)} bytes)")
            return None
        return rest

    def _next(self) -> bytes | None:
        """The next whole message (b"" for an empty line), or None when more bytes are needed."""
        buffer = self._buffer
        skip = 0
        while skip < len(buffer) and buffer[skip] in _TRAILER:  # separators between frames
            skip += 1
        del buffer[:skip]
        if not buffer:
            return None
        if 0x30 <= buffer[0] <= 0x39:
            return self._octet_counted()
        delimiter = _DELIMITER.search(buffer)
        end = -1 if delimiter is None else delimiter.start()
        if end < 0:
            if len(buffer) > self._max:
                raise FramingError("oversize", f"line longer than {self._max} bytes without LF")
            return None
        if end > self._max:
            raise FramingError("oversize", f"line of {end} bytes exceeds {self._max}")
        message = bytes(buffer[:end]).rstrip(b"\r")
        del buffer[: end + 1]
        return message

    def _octet_counted(self) -> bytes | None:
        buffer = self._buffer
        space = buffer.find(b" ", 0, self._digits + 1)
        if space < 0:
            head = bytes(buffer[: self._digits + 1])
            if len(buffer) > self._digits or not head.isdigit():
                raise FramingError("bad_octet_count", f"octet count {head[:16]!r} is not digits then a space")
            return None
        count = bytes(buffer[:space])
        if not count.isdigit() or count.startswith(b"0"):
            raise FramingError("bad_octet_count", f"octet count {count[:16]!r} is not a positive number")
        length = int(count)
        if length > self._max:
            raise FramingError("oversize", f"octet count {length} exceeds {self._max} bytes")
        end = space + 1 + length
        if len(buffer) < end:
            return None
        message = bytes(buffer[space + 1 : end])
        del buffer[:end]
        return message
