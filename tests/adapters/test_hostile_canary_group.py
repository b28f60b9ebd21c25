"""Hostile input for the opencanary, qeeqbox, cowrie-cef and cowrie-sessions adapters and their
detect functions: any JSON value, any text, and records shaped like real ones with fuzzed
values. Only RecordRejected and RecordIgnored may leave an adapter, detect never raises, and
every event must re-encode and respect the limits (checked by the shared `check_events`)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honeyatlas.adapters import Adapter, cowrie_cef, cowrie_sessions, opencanary, qeeqbox
from tests.adapters.test_adapters_hostile import (
    check_group_adapter,
    hostile_text,
    json_values,
    plausible,
    raws,
    zones,
)

JSON_ADAPTERS = [opencanary.ADAPTER, qeeqbox.ADAPTER, cowrie_sessions.ADAPTER]
ALL_ADAPTERS = [*JSON_ADAPTERS, cowrie_cef.ADAPTER]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

logdata = st.dictionaries(
    st.sampled_from(["USERNAME", "PASSWORD", "PATH", "USERAGENT", "REMOTEVERSION", "CMD", "ARGS", "FILENAME",
                     "OPCODE", "REQUESTS", "COMMUNITY_STRING", "HEADERS", "HOST", "REPO", "DATA", "VNC Password",
                     "UserName", "action", "command", "username", "KEY"]),
    plausible,
    max_size=6,
)
opencanary_like = st.fixed_dictionaries(
    {"logtype": st.sampled_from([1001, 2000, 3001, 4002, 5002, 8001, 10001, 12001, 13001, 15001, 16001, 17001,
                                 18005, 20001, 99001, 31337]) | plausible},
    optional={"logdata": logdata | plausible, "utc_time": plausible, "src_host": plausible, "src_port": plausible,
              "dst_host": plausible, "dst_port": plausible, "node_id": plausible},
)
qeeqbox_like = st.fixed_dictionaries(
    {"action": st.sampled_from(["process", "connection", "login", "command", "interactive", "GET", "x"]) | plausible,
     "server": st.sampled_from(["ssh_server", "mysql_server", "http_server", "dns_server", "_server"]) | plausible},
    optional={key: plausible for key in ("src_ip", "src_port", "dest_ip", "dest_port", "timestamp", "username",
                                         "password", "status", "key_fingerprint")}
    | {"data": st.dictionaries(st.sampled_from(["command", "uri", "User-Agent", "method"]), plausible, max_size=4)},
)
pairs = st.lists(st.lists(plausible, min_size=0, max_size=3) | plausible, max_size=5)
sessions_like = st.fixed_dictionaries(
    {"session": plausible, "startTime": plausible},
    optional={"endTime": plausible, "peerIP": plausible, "peerPort": plausible, "hostIP": plausible,
              "hostPort": plausible, "protocol": plausible, "version": plausible, "loggedin": plausible | pairs,
              "credentials": pairs, "commands": st.lists(plausible, max_size=4) | plausible,
              "unknownCommands": st.lists(plausible, max_size=4), "urls": st.lists(plausible, max_size=4) | plausible,
              "hashes": st.lists(st.sampled_from(["a" * 64, "B" * 64]) | plausible, max_size=4), "ttylog": plausible},
)
cef_value = st.text(alphabet=st.sampled_from(list("ab =|\\\n[]():/.x0")), max_size=20) | hostile_text
cef_like = st.builds(
    lambda header, eventid, pairs, rt: (
        f"{header}CEF:0|Cowrie|Cowrie|1.0|{eventid}|{eventid}|5|"
        + " ".join(f"{key}={value}" for key, value in pairs) + (f" rt={rt}" if rt is not None else "")
    ),
    st.sampled_from(["", "<134>", "<134>Nov 27 21:42:54 h cowrie: ", "<13>1 2026-11-27T21:42:54Z h c - - - ",
                     "Feb 29 25:61:00 h c: ", "<999>1 - - - "]),
    st.sampled_from(["cowrie.login.failed", "cowrie.command.input", "cowrie.session.file_download",
                     "cowrie.session.connect", "cowrie.client.version", "cowrie.x", "other", "cowrie\\|x"]),
    st.lists(st.tuples(st.sampled_from(["msg", "src", "spt", "dst", "dpt", "duser", "filehash", "rt", "k"]),
                       cef_value), max_size=6),
    st.none() | st.sampled_from(["1795815774275", "99999999999999999", "Nov 27 2026 21:42:54", "Feb 30 2026 1:2:3",
                                 "Nov 27 2026 21:42:54.1 CET", "0", ""]),
)
any_text = st.text(max_size=200) | hostile_text | cef_like
EDGE_ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]


def check(adapter: Adapter, record: Any, zone: timezone, raw: str = "{}") -> None:
    check_group_adapter(adapter, record, zone, raw, require_detect=False)


@pytest.mark.parametrize("adapter", ALL_ADAPTERS, ids=lambda adapter: adapter.name)
@FAST
@given(record=json_values | any_text, zone=zones, raw=raws)
def test_any_json_value_or_text(adapter: Adapter, record: Any, zone: timezone, raw: str) -> None:
    check(adapter, record, zone, raw)
    assert adapter.detect is not None and adapter.detect(record) in (True, False)


@pytest.mark.parametrize("adapter", JSON_ADAPTERS, ids=lambda adapter: adapter.name)
@FAST
@given(record=opencanary_like | qeeqbox_like | sessions_like, zone=zones, raw=raws)
def test_records_shaped_like_real_ones(adapter: Adapter, record: dict[str, Any], zone: timezone, raw: str) -> None:
    check(adapter, record, zone, raw)
    assert adapter.detect is not None and adapter.detect(record) in (True, False)


@FAST
@given(line=cef_like, zone=zones, raw=raws)
def test_cef_lines_shaped_like_real_ones(line: str, zone: timezone, raw: str) -> None:
    check(cowrie_cef.ADAPTER, line, zone, raw)
    assert cowrie_cef.detect(line) in (True, False)


EDGE_CASES = [
    (opencanary.ADAPTER, {"logtype": 13001, "logdata": {"REQUESTS": [[1], {"a": 2}] * 100}}),
    (opencanary.ADAPTER, {"logtype": 10**30}),
    (opencanary.ADAPTER, {"logtype": 15001, "logdata": {"HEADERS": {"user-agent": [{"x": 1}]}}}),
    (qeeqbox.ADAPTER, {"action": "login", "server": "mysql_server", "password": "ab:" * 5000}),
    (cowrie_sessions.ADAPTER, {"session": "s", "startTime": 1e300, "commands": ["x"] * 5000}),
    (cowrie_sessions.ADAPTER, {"session": ["s"], "startTime": "2026-11-27T21:42:54Z", "urls": [None, 5]}),
    (cowrie_cef.ADAPTER, "CEF:0|Cowrie|Cowrie|1|cowrie.command.input|x|5|msg=CMD: " + "\\" * 70000),
    (cowrie_cef.ADAPTER, "<1>Dec 31 23:59:59 h: CEF:0|Cowrie|Cowrie|1|cowrie.login.success|x|5|rt=" + "9" * 16),
]


@pytest.mark.parametrize(
    ("adapter", "record"), EDGE_CASES, ids=[f"{adapter.name}-{n}" for n, (adapter, _) in enumerate(EDGE_CASES)],
)
@pytest.mark.parametrize("zone", EDGE_ZONES, ids=str)
def test_known_edge_cases(adapter: Adapter, record: Any, zone: timezone) -> None:
    check(adapter, record, zone)
