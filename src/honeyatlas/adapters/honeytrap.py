"""The `honeytrap` format: honeytrap's logjson records (htm_logJSON.c), one per attack.

honeytrap writes one record when an attack connection ends:

    {"is_virtual": false, "@timestamp": "2026-11-27T21:42:54Z", "start_time": "2026-11-27T21:42:54Z",
     "end_time": "2026-11-27T21:42:58Z",
     "attack_connection": {"protocol": "tcp", "remote_ip": "198.51.100.7", "remote_port": 40022,
                           "local_ip": "192.0.2.10", "local_port": 8545,
                           "payload": {"md5_hash": "…", "sha512_hash": "…", "length": 91, "data_hex": "…"}},
     "proxy_connection": {…}, "operation_mode": 0, "download_count": 1, "download_tries": 1,
     "downloads": [{"protocol": "tcp", "remote_ip": …, "remote_port": …, "local_ip": …, "local_port": …,
                    "type": "ftp", "username": …, "password": …, "uri": …, "filename": …, "payload": {…}}]}

Variants read as well: T-Pot's honeytrap writes `downloads` as one object with numbered
keys (`uri_0`, `payload_0`, …) instead of a list; T-Pot's logstash renames
`attack_connection.{remote_ip,remote_port,local_ip,local_port}` to top-level
`src_ip, src_port, dest_ip, dest_port` (the same names are also read inside
`attack_connection`); older honeytrap wrote `start_time` as local time with a zone
abbreviation ("2016-03-01 12:34:56 CET").

One record becomes:

    what                     kind           action              outcome                        fields
    the attack connection    connection     honeytrap.attack    unknown                        md5 of the payload
    each download            file_download  honeytrap.download  success with a payload hash,   url, md5
                                                                else unknown

Common fields: `src_ip`/`src_port` (the attacker), `dst_ip`/`dst_port` (the honeypot),
`transport` from `attack_connection.protocol` (tcp, udp), `ts` from `start_time`, else
`@timestamp`.

Decisions worth knowing:
- `data_hex` (the attacker's raw bytes) never goes into a text field; `raw` keeps it. The
  payload's MD5 goes into `md5`, except for an empty payload, whose MD5 (d41d8cd9…) names
  no file and would top every hash statistic. `sha512_hash` has no event field.
- A download's `url` is its `uri`; without one it is built as `type://host:port/filename`
  from the download's own fields. A download's `username`/`password` are what honeytrap
  used to fetch the file from the attacker's server, not a login attempt: they stay in
  `raw`. At most 64 downloads per record become events.
- honeytrap names no application protocol: `protocol` stays empty.
- On a T-Pot sensor, T-Pot's `type: "Honeytrap"` sets the event's `honeypot`.
- `is_virtual: true` marks a copy of another attack that honeytrap decoded itself (its
  deUnicode plugin), not a connection: RecordIgnored. `proxy_connection` (mirror or proxy
  mode) is the honeypot's own connection onward and is not read.
- An older "YYYY-MM-DD HH:MM:SS ZONE" time is UTC for UTC/GMT and is otherwise read in
  `ingest.sensor_timezone` (an abbreviation such as CET does not name one offset).

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_ip, parse_port, parse_timestamp
from honeyatlas.errors import RecordIgnored, RecordRejected
from honeyatlas.event import Event, Kind, Outcome

Record = dict[Any, Any]

MAX_DOWNLOADS = 64
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
_HONEYTRAP_KEYS = ("start_time", "end_time", "download_count", "download_tries", "proxy_connection", "is_virtual")
_ZONED_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([A-Za-z]{1,6})")
_NUMBERED_KEY = re.compile(r"(.+)_(\d{1,6})")


def _object(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _time(value: Any, ctx: RecordContext) -> Any:
    match = _ZONED_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return parse_timestamp(value, UTC)  # "%FT%TZ", or ISO text with its own zone
    zone = UTC if match.group(2).upper() in ("UTC", "GMT", "Z") else ctx.timezone
    return parse_timestamp(match.group(1), zone)


def _payload_md5(payload: Any, name: str, notes: list[str]) -> str | None:
    payload = _object(payload)
    digest = get.digest(payload.get("md5_hash"), f"{name}.md5_hash", 32, notes)
    empty = payload.get("length") == 0 or digest == EMPTY_MD5
    return None if empty else digest


def _downloads(value: Any, notes: list[str]) -> list[Record]:
    """Downloads as a list, or T-Pot's object of numbered keys ({"uri_0": …, "payload_0": …})."""
    if value is None:
        return []
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        grouped: dict[int, Record] = {}
        for key, item in value.items():
            match = _NUMBERED_KEY.fullmatch(key) if isinstance(key, str) else None
            if match is not None:
                grouped.setdefault(int(match.group(2)), {})[match.group(1)] = item
        items = [grouped[number] for number in sorted(grouped)]
    else:
        notes.append("downloads is neither a list nor an object; dropped")
        return []
    downloads = [item for item in items[:MAX_DOWNLOADS] if isinstance(item, dict)]
    if len(downloads) < min(len(items), MAX_DOWNLOADS):
        notes.append(f"downloads: {min(len(items), MAX_DOWNLOADS) - len(downloads)} entries are not objects; dropped")
    if len(items) > MAX_DOWNLOADS:
        notes.append(f"downloads: {len(items) - MAX_DOWNLOADS} beyond the first {MAX_DOWNLOADS} dropped")
    return downloads


def _download_url(download: Record, notes: list[str]) -> Any:
    uri = get.text(download.get("uri"), "download uri", notes)
    if uri is not None and uri != "":
        return uri
    kind, host, port = download.get("type"), parse_ip(download.get("remote_ip")), parse_port(download.get("remote_port"))
    if not isinstance(kind, str) or not kind.isalnum() or host is None:
        return None
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority += f":{port}"
    filename = download.get("filename")
    return f"{kind.lower()}://{authority}/{filename if isinstance(filename, str) else ''}"


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    connection = record.get("attack_connection")
    if not isinstance(connection, dict):
        if "src_ip" not in record or not any(key in record for key in _HONEYTRAP_KEYS):
            raise RecordRejected("not a honeytrap attack record")
        connection = {}
    if record.get("is_virtual") is True:
        raise RecordIgnored("honeytrap virtual attack: a decoded copy of another record")

    notes: list[str] = []
    src_ip = get.first_present(("remote_ip", connection.get("remote_ip")), ("src_ip", connection.get("src_ip")),
                    ("src_ip", record.get("src_ip")))
    src_port = get.first_present(("remote_port", connection.get("remote_port")), ("src_port", connection.get("src_port")),
                      ("src_port", record.get("src_port")))
    dst_ip = get.first_present(("local_ip", connection.get("local_ip")), ("dest_ip", connection.get("dest_ip")),
                    ("dest_ip", record.get("dest_ip")), ("dst_ip", record.get("dst_ip")))
    dst_port = get.first_present(("local_port", connection.get("local_port")), ("dest_port", connection.get("dest_port")),
                      ("dest_port", record.get("dest_port")), ("dst_port", record.get("dst_port")))
    transport = connection.get("protocol")
    common: dict[str, Any] = {
        "transport": transport.lower() if isinstance(transport, str) and transport.isalpha() else None,
        "src_ip": get.address(src_ip[1], src_ip[0], notes),
        "src_port": get.port(src_port[1], src_port[0], notes),
        "dst_ip": get.address(dst_ip[1], dst_ip[0], notes),
        "dst_port": get.port(dst_port[1], dst_port[0], notes),
        "honeypot": get.tpot_honeypot(record, "honeytrap"),
    }
    start = record.get("start_time")
    ts = _time(start if start is not None else record.get("@timestamp"), ctx)

    attack_notes = list(notes)  # what reading the payload and the downloads cost: told on this event only
    digest = _payload_md5(connection.get("payload"), "payload", attack_notes)
    downloads = _downloads(record.get("downloads"), attack_notes)
    events = [make_event(ctx, Kind.CONNECTION, ts=ts, warnings=attack_notes, action="honeytrap.attack", md5=digest,
                         **common)]
    for download in downloads:
        own = list(notes)
        digest = _payload_md5(download.get("payload"), "download payload", own)
        events.append(make_event(
            ctx, Kind.FILE_DOWNLOAD, ts=ts, warnings=own, action="honeytrap.download",
            outcome=Outcome.SUCCESS if digest else Outcome.UNKNOWN,
            url=_download_url(download, own), md5=digest, **common,
        ))
    return events


def detect(record: Any) -> bool:
    return isinstance(record, dict) and (
        isinstance(record.get("attack_connection"), dict)
        or ("src_ip" in record and "download_tries" in record and "start_time" in record)
    )


ADAPTER = Adapter(
    name="honeytrap",
    description="honeytrap logjson attack records (one per connection), plain or as T-Pot ships them",
    adapt=adapt,
    detect=detect,
    priority=30,
)
