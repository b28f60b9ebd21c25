"""The same real-world action comes out the same, whichever honeypot saw it.

Records are real ones captured from cowrie 3.1.4, OpenCanary 0.9.10 and qeeqbox honeypots
0.66 on loopback (../shared/samples), one failed password login per protocol.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from honeyatlas.adapters import RecordContext, load_adapters
from honeyatlas.event import Event, Kind, Outcome

SSH = {
    "cowrie": '{"session":"044e92401ecb","protocol":"ssh","src_ip":"127.0.0.1","src_port":55782,"dst_ip":"127.0.0.1","dst_port":2222,"username":"root","password":"root","eventid":"cowrie.login.failed","sensor":"lab-cowrie-01","uuid":"74d0fc7a-eaab-11f1-9731-02fc00000001","timestamp":"2026-11-27T21:42:54.275704Z","message":"login attempt [root/root] failed"}',
    "opencanary": '{"dst_host": "127.0.0.1", "dst_port": 2022, "local_time": "2026-11-27 21:46:50.407823", "local_time_adjusted": "2026-11-27 21:46:50.407835", "logdata": {"LOCALVERSION": "SSH-2.0-OpenSSH_5.1p1 Debian-4", "PASSWORD": "opencanary-pass", "REMOTEVERSION": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6", "USERNAME": "root"}, "logtype": 4002, "node_id": "lab-opencanary-01", "src_host": "127.0.0.1", "src_port": 58912, "utc_time": "2026-11-27 21:46:50.407831"}',
    "qeeqbox": '{"action": "login", "dest_ip": "127.0.0.1", "dest_port": "2224", "password": "wrongpass", "server": "ssh_server", "src_ip": "127.0.0.1", "src_port": "58480", "status": "failed", "timestamp": "2026-11-27T21:49:26.334551", "username": "root"}',
}
TELNET = {
    "cowrie": '{"session":"a45a452ef0a7","protocol":"telnet","src_ip":"127.0.0.1","src_port":48782,"dst_ip":"127.0.0.1","dst_port":2223,"username":"root","password":"root","eventid":"cowrie.login.failed","sensor":"lab-cowrie-01","uuid":"74d0fc7a-eaab-11f1-9731-02fc00000001","timestamp":"2026-11-27T21:43:23.896089Z","message":"login attempt [root/root] failed"}',
    "opencanary": '{"dst_host": "127.0.0.1", "dst_port": 2324, "honeycred": false, "local_time": "2026-11-27 21:46:57.611577", "local_time_adjusted": "2026-11-27 21:46:57.611620", "logdata": {"PASSWORD": "admin123", "USERNAME": "admin"}, "logtype": 6001, "node_id": "lab-opencanary-01", "src_host": "127.0.0.1", "src_port": 36608, "utc_time": "2026-11-27 21:46:57.611615"}',
    "qeeqbox": '{"action": "login", "dest_ip": "127.0.0.1", "dest_port": "2325", "password": "root123", "server": "telnet_server", "src_ip": "127.0.0.1", "src_port": "57504", "status": "failed", "timestamp": "2026-11-27T21:49:32.595183", "username": "root"}',
}
FILLED = ("ts", "action", "src_ip", "src_port", "dst_ip", "dst_port", "username", "password")


def adapt(fmt: str, line: str) -> list[Event]:
    ctx = RecordContext(sensor="s", honeypot=fmt, received=datetime(2026, 11, 28, tzinfo=UTC), timezone=UTC, raw=line)
    return load_adapters()[fmt].adapt(json.loads(line), ctx)


@pytest.mark.parametrize(("records", "protocol"), [(SSH, "ssh"), (TELNET, "telnet")])
def test_failed_password_login_is_one_shape(records: dict[str, str], protocol: str) -> None:
    shapes = {}
    for fmt, line in records.items():
        (event,) = adapt(fmt, line)
        assert (event.kind, event.outcome, event.transport, event.protocol) == (
            Kind.LOGIN_ATTEMPT, Outcome.FAILURE, "tcp", protocol
        ), fmt
        missing = [field for field in FILLED if getattr(event, field) is None]
        assert missing == [], f"{fmt} leaves {missing} empty"
        assert event.src_ip == "127.0.0.1" and event.ts.tzinfo is not None
        shapes[fmt] = sorted(f for f in Event.__struct_fields__ if getattr(event, f) not in (None, (), ""))
    # Beyond the common core, every honeypot fills the same fields of a failed login.
    common = {"id", "ts", "ingest_ts", "sensor", "honeypot", "kind", "outcome", "raw", "v", *FILLED,
              "transport", "protocol"}
    for fmt, fields in shapes.items():
        assert set(fields) <= common | {"session", "client_version", "warnings"}, (fmt, fields)
