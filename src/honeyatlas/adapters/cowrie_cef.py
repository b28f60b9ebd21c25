"""The `cowrie-cef` format: one line of cowrie's CEF output becomes one event.

cowrie's CEF formatter (`src/cowrie/core/cef.py`) re-encodes a JSON log record, losing most of
it: `CEF:0|Cowrie|Cowrie|1.0|<eventid>|<eventid>|5|app=SSHv2 destinationServicename=sshd
deviceExternalId=<sensor> msg=<message> src=<src_ip> proto=tcp [spt dpt dst | duser outcome |
filehash filePath]`. The line may arrive wrapped in a syslog header (RFC 3164 `<PRI>Mmm dd
hh:mm:ss host tag: `, RFC 5424 `<PRI>1 ISO-TS host app procid msgid SD `, or a file line that
starts with an RFC 3339 time); the header is stripped and only its time is used.

This adapter turns the line back into the cowrie JSON record it came from and hands that to
the `cowrie` adapter, so kinds, outcomes, actions, protocol inference and field cleaning are
exactly those of the JSON log (see cowrie.py for the eventid table):

    CEF                                   cowrie JSON field
    Signature ID                          eventid (must start with "cowrie.")
    src / spt / dst / dpt                 src_ip / src_port / dst_ip / dst_port (ports on session.connect only)
    duser (or suser)                      username
    filehash / fileHash                   shasum
    rt, else the syslog header time       timestamp (none: make_event falls back with a warning)
    msg, for four fixed cowrie templates:
      "CMD: <input>"                      input (command.input)
      "Command found: / Command not found: <input>"  input (command.success / command.failed)
      "Downloaded URL (<url>) with SHA-256 …"        url (session.file_download)
      "Remote SSH version: <version>"      version (client.version)
      "New connection: … [session: <id>]"  session (session.connect only: CEF carries no session id)

Decisions worth knowing:
- cowrie's CEF has no password (the login message quotes it, but "[user/pass]" cannot be split
  reliably): `password` stays None.
- `app=SSHv2` and `destinationServicename=sshd` are constants in cowrie's formatter, even for
  telnet: they are not read. `protocol` comes from the port (session.connect) or the eventid
  family, as in the JSON adapter, and is None for most events of a session.
- `deviceExternalId` is the sensor name cowrie was configured with; the event's sensor is
  always `ctx.sensor`.
- Extension values run until the space before the next `key=`; `\\=`, `\\\\`, `\\n` and `\\r`
  are unescaped. cowrie 3.x escapes `=` in values; an older cowrie that does not can split a
  value that contains " word=": the parse is still safe, the value is just cut there.
- An RFC 3164 header has no year and no zone: the year is the one that puts the time nearest
  to (and not more than a day after) the receive time, and the zone is `ctx.timezone`.
- Warnings about bad values name the cowrie JSON field the CEF key maps to (src_ip for src).

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext, cowrie
from honeyatlas.adapters.fields import parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event

MAX_LINE = 65536
_CEF_START = re.compile(r"(?:^|\s)CEF:\d+\|")
_PRI = re.compile(r"<\d{1,3}>")
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d:\d\d:\d\d)\b")
_EXT_KEY = re.compile(r"(?:^| )([A-Za-z0-9_.\[\]-]+)=")
_EXT_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_RT_TEXT = re.compile(r"([A-Z][a-z]{2}) (\d\d) (\d{4}) (\d\d:\d\d:\d\d)(?:\.(\d{1,3}))?(?: (\S+))?")

# Each cowrie message template that carries a field the CEF extension lacks.
_MESSAGE_FIELDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "cowrie.command.input": ("input", re.compile(r"CMD: (.*)", re.DOTALL)),
    "cowrie.command.success": ("input", re.compile(r"Command found: (.*)", re.DOTALL)),
    "cowrie.command.failed": ("input", re.compile(r"Command not found: (.*)", re.DOTALL)),
    "cowrie.session.file_download": ("url", re.compile(r"Downloaded URL \((.*?)\) with SHA-256 ", re.DOTALL)),
    "cowrie.client.version": ("version", re.compile(r"Remote SSH version: (.*)", re.DOTALL)),
    "cowrie.session.connect": ("session", re.compile(r".*\[session: ([^\]\s]{1,128})\]$", re.DOTALL)),
}


def _split_header(body: str) -> tuple[list[str], str] | None:
    """The seven CEF header fields (unescaped) and the raw extension; None when fewer than seven."""
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in "|\\":
            current.append(body[i + 1])
            i += 2
            continue
        if char == "|":
            fields.append("".join(current))
            current = []
            if len(fields) == 7:
                return fields, body[i + 1 :]
        else:
            current.append(char)
        i += 1
    return None


def _unescape_value(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in _EXT_ESCAPES:
            out.append(_EXT_ESCAPES[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_extension(text: str) -> dict[str, str]:
    """CEF extension key=value pairs; a value runs until the space before the next key."""
    keys = list(_EXT_KEY.finditer(text))
    pairs: dict[str, str] = {}
    for number, match in enumerate(keys):
        end = keys[number + 1].start() if number + 1 < len(keys) else len(text)
        pairs.setdefault(match.group(1), _unescape_value(text[match.end() : end]))
    return pairs


def _bsd_time(match: re.Match[str], ctx: RecordContext) -> datetime | None:
    """An RFC 3164 time (no year, no zone) in the year that puts it nearest the receive time."""
    month = _MONTHS.get(match.group(1))
    if month is None:
        return None
    hour, minute, second = (int(part) for part in match.group(3).split(":"))
    received = ctx.received.astimezone(ctx.timezone)
    for year in (received.year, received.year - 1, received.year + 1):
        try:
            local = datetime(year, month, int(match.group(2)), hour, minute, second, tzinfo=ctx.timezone)
        except ValueError:  # Feb 29 outside a leap year, hour 24, ...
            continue
        if local <= received + timedelta(days=1) and received - local < timedelta(days=200):
            return local.astimezone(UTC)
    return None


def _header_time(header: str, ctx: RecordContext) -> datetime | None:
    text = header.strip()
    pri = _PRI.match(text)
    if pri:
        text = text[pri.end() :]
    if text.startswith("1 "):  # RFC 5424: VERSION SP TIMESTAMP
        text = text[2:]
    first = text.split(" ", 1)[0]
    if first[:4].isdigit():
        return parse_timestamp(first, ctx.timezone)
    bsd = _BSD_TIME.match(text)
    return _bsd_time(bsd, ctx) if bsd else None


def _rt_time(value: str, ctx: RecordContext) -> datetime | None:
    """CEF `rt`: epoch milliseconds, "MMM dd yyyy HH:mm:ss[.SSS] [zone]", or ISO-8601."""
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 16:
        return parse_timestamp(int(text) / 1000, ctx.timezone)
    match = _RT_TEXT.fullmatch(text)
    if match is None:
        return parse_timestamp(text, ctx.timezone)
    month = _MONTHS.get(match.group(1))
    zone = match.group(6)
    if month is None or (zone is not None and zone.upper() not in ("UTC", "GMT", "Z")):
        return None  # a named zone we cannot resolve without a zone database
    iso = f"{match.group(3)}-{month:02d}-{match.group(2)}T{match.group(4)}.{(match.group(5) or '0').ljust(3, '0')}"
    return parse_timestamp(iso, UTC if zone else ctx.timezone)


def _cowrie_record(eventid: str, ext: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventid": eventid,
        "src_ip": ext.get("src"),
        "src_port": ext.get("spt"),
        "dst_ip": ext.get("dst"),
        "dst_port": ext.get("dpt"),
        "username": ext.get("duser", ext.get("suser")),
        "shasum": ext.get("filehash", ext.get("fileHash")),
    }
    template = _MESSAGE_FIELDS.get(eventid)
    message = ext.get("msg")
    if template is not None and message is not None:
        name, pattern = template
        found = pattern.match(message)
        if found:
            record[name] = found.group(1)
    return {key: value for key, value in record.items() if value is not None}


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if isinstance(record, bytes):
        record = record.decode("utf-8", "replace")
    if not isinstance(record, str):
        raise RecordRejected("not a text line")
    line = record[:MAX_LINE].strip()
    start = _CEF_START.search(line)
    if start is None:
        raise RecordRejected("not a CEF line")
    begin = line.index("CEF:", start.start())
    parsed = _split_header(line[begin + 4 :])
    if parsed is None:
        raise RecordRejected("CEF header has fewer than seven fields")
    header, extension = parsed
    _version, vendor, product, _device_version, signature, _name, _severity = header
    if vendor.strip().lower() != "cowrie" or product.strip().lower() != "cowrie":
        raise RecordRejected("not cowrie CEF (device vendor/product is not Cowrie)")
    eventid = signature.strip()
    if not eventid.startswith("cowrie."):
        raise RecordRejected("CEF signature id is not a cowrie eventid")

    ext = parse_extension(extension)
    cowrie_record = _cowrie_record(eventid, ext)
    ts = _rt_time(ext["rt"], ctx) if "rt" in ext else None
    if ts is None:
        ts = _header_time(line[:begin], ctx)
    if ts is not None:
        cowrie_record["timestamp"] = ts.isoformat()
    return cowrie.adapt(cowrie_record, ctx)


def detect(record: Any) -> bool:
    return isinstance(record, str) and re.search(r"CEF:\d+\|Cowrie\|Cowrie\|", record[:1024], re.IGNORECASE) is not None


ADAPTER = Adapter(
    name="cowrie-cef",
    description="cowrie CEF lines (output_localsyslog format=cef), bare or behind an RFC 3164/5424 syslog header",
    adapt=adapt,
    detect=detect,
    input="text",
    priority=20,
)
