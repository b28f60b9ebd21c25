"""The `cowrie-sessions` format: cowrie's hpfeeds `cowrie.sessions` summary becomes the events of a session.

cowrie's hpfeeds output (`output/hpfeeds3.py`) sends one message per session, at close:
`{session, startTime, endTime, peerIP, peerPort, hostIP, hostPort, loggedin: [u, p] | null,
credentials: [[u, p], …], commands: […], unknownCommands: […], urls: […], version, ttylog,
hashes: [sha256, …], protocol}`. It builds that summary from the same log entries its JSON
log writes, so each list maps back to one cowrie eventid. This adapter rebuilds those
entries as cowrie JSON records and hands each to the `cowrie` adapter, so every event has
exactly the `action` and field values the JSON log gives the same fact, and the pipeline's
de-duplication (`summary_of="cowrie"`) can match the two streams on (sensor, session,
action, username, password, command, url, sha256):

    summary                       cowrie eventid (one event each)     ts
    startTime, peer*/host*        cowrie.session.connect              startTime
    version (null for telnet)     cowrie.client.version               startTime
    each credentials pair         cowrie.login.failed                 startTime
    loggedin                      cowrie.login.success                startTime
    each commands entry           cowrie.command.input                startTime
    each unknownCommands entry    cowrie.command.failed               startTime
    each urls entry               cowrie.session.file_download        startTime
    endTime                       cowrie.session.closed               endTime

Common: `session` = session, `src_*` = peerIP/peerPort, `dst_*` = hostIP/hostPort,
`protocol` = protocol, `transport` tcp.

Decisions worth knowing:
- `credentials` holds the *failed* pairs only: cowrie appends to it on login.failed and sets
  `loggedin` on login.success (verified with cowrie 3.1.4: a session that logged in at the first
  try has `credentials: []`). A pair found in both is a real failure followed by a success
  (cowrie's AuthRandom accepts a pair only after it failed before) and gives both events.
- An unknown command is in `commands` (the whole line, as command.input) and again in
  `unknownCommands` (the word not found, as command.failed), exactly as the JSON log writes
  command.input then command.failed.
- The client banner becomes its own cowrie.client.version event, as in the JSON log, rather
  than a field of the connect event: with de-duplication, a connect event carrying it would
  count the banner twice whenever the summary arrived first.
- `hashes` is a set of the SHA-256 of every download *and* upload and of redirected output,
  unordered, so it cannot in general be paired with `urls`. It is paired only when that is
  certain: exactly one distinct URL and exactly one hash (every download adds its hash).
  Otherwise each download event has `url` only and a warning; such events do not match the
  JSON log's (which carry `sha256`) and are counted once more if both streams are ingested.
  Hashes of uploads and redirected output have no event here (the JSON log names their
  target path, which the summary lacks); `raw` keeps them.
- The summary has no time per action: everything between connect and close is stamped with
  `startTime`, so it sorts before the JSON log's copy of the same action.
- `ttylog` (hex of the session's tty log) is not decoded; `raw` keeps the start of it.
- At most MAX_ITEMS entries of each list become events; the rest are dropped with a warning.
  Problems with the summary's own shape (a list that is not one, a pair that is not a pair)
  are warnings on its connect event; bad values inside are cleaned and warned about by the
  cowrie adapter, with the cowrie JSON field names (src_ip for peerIP).

This module does no I/O and keeps no state between records.
"""

from __future__ import annotations

from typing import Any

import msgspec

from honeyatlas.adapters import Adapter, RecordContext, cowrie
from honeyatlas.adapters.fields import parse_hash
from honeyatlas.errors import RecordRejected
from honeyatlas.event import MAX_WARNINGS, Event

MAX_ITEMS = 1000
_UNPAIRED = "summary hashes cannot be paired with its urls; sha256 left empty"


def _entries(summary: dict[Any, Any], key: str, notes: list[str]) -> list[Any]:
    value = summary.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        notes.append(f"{key} is not a list; ignored")
        return []
    if len(value) > MAX_ITEMS:
        notes.append(f"{key}: {len(value) - MAX_ITEMS} entries beyond {MAX_ITEMS} dropped")
        return value[:MAX_ITEMS]
    return value


def _pair(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None


def _credentials(summary: dict[Any, Any], notes: list[str]) -> list[dict[str, Any]]:
    records = []
    for entry in _entries(summary, "credentials", notes):
        pair = _pair(entry)
        if pair is None:
            notes.append("a credentials entry is not a [username, password] pair; skipped")
            continue
        records.append({"eventid": "cowrie.login.failed", "username": pair[0], "password": pair[1]})
    loggedin = summary.get("loggedin")
    if loggedin is not None:
        pair = _pair(loggedin)
        if pair is None:
            notes.append("loggedin is not a [username, password] pair; skipped")
        else:
            records.append({"eventid": "cowrie.login.success", "username": pair[0], "password": pair[1]})
    return records


def _downloads(summary: dict[Any, Any], notes: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """One cowrie.session.file_download per url, and whether their hashes stayed unpaired."""
    urls = _entries(summary, "urls", notes)
    if not urls:
        return [], False
    hashes = {digest for digest in (parse_hash(h, 64) for h in _entries(summary, "hashes", notes)) if digest}
    distinct_urls = {url for url in urls if isinstance(url, str)}
    paired = len(hashes) == 1 and len(distinct_urls) == 1
    records = []
    for url in urls:
        record: dict[str, Any] = {"eventid": "cowrie.session.file_download", "url": url}
        if paired:
            record["shasum"] = next(iter(hashes))
        records.append(record)
    return records, bool(hashes) and not paired


def _noted(event: Event, notes: list[str]) -> Event:
    """The event with summary-level warnings first (fixed texts: nothing to clean)."""
    return msgspec.structs.replace(event, warnings=(*notes, *event.warnings)[:MAX_WARNINGS])


def adapt(record: Any, ctx: RecordContext) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordRejected("not a JSON object")
    if "session" not in record or not ("startTime" in record or "peerIP" in record):
        raise RecordRejected("not a cowrie session summary (needs session and startTime or peerIP)")
    notes: list[str] = []
    start, end = record.get("startTime"), record.get("endTime")
    common = {
        "session": record.get("session"),
        "src_ip": record.get("peerIP"),
        "src_port": record.get("peerPort"),
        "dst_ip": record.get("hostIP"),
        "dst_port": record.get("hostPort"),
        "protocol": record.get("protocol"),
        "timestamp": start,
    }
    actions: list[dict[str, Any]] = []
    if record.get("version") is not None:
        actions.append({"eventid": "cowrie.client.version", "version": record["version"]})
    actions.extend(_credentials(record, notes))
    actions.extend({"eventid": "cowrie.command.input", "input": c} for c in _entries(record, "commands", notes))
    actions.extend({"eventid": "cowrie.command.failed", "input": c} for c in _entries(record, "unknownCommands", notes))
    downloads, unpaired = _downloads(record, notes)

    def expand(action: dict[str, Any]) -> list[Event]:
        return cowrie.adapt({**common, **action}, ctx)

    (connect,) = expand({"eventid": "cowrie.session.connect"})
    events = [_noted(connect, notes) if notes else connect]
    for action in actions:
        events.extend(expand(action))
    for action in downloads:
        events.extend(_noted(event, [_UNPAIRED]) if unpaired else event for event in expand(action))
    events.extend(expand({"eventid": "cowrie.session.closed", "timestamp": end or None}))
    return events


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "session" in record and "peerIP" in record and "startTime" in record


ADAPTER = Adapter(
    name="cowrie-sessions",
    description="cowrie hpfeeds cowrie.sessions summaries (one per session, at close), expanded into cowrie events",
    adapt=adapt,
    detect=detect,
    priority=20,
    summary_of="cowrie",
)
