"""cowrie 3.1.4 attacked with OpenSSH, its two streams shipped to honeyatlas, each to its own sensor.

The JSON log goes through the `honeyatlas forward` command (sensor cowrie-json), the hpfeeds3
output publishes `cowrie.sessions` to the server's hpfeeds endpoint (sensor cowrie-hpfeeds).
Two sensors keep the streams apart, so "each attack exactly once per stream" is checkable
(on one sensor the pipeline would de-duplicate one stream against the other).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.e2e.lab import (
    assert_each_line_stored_once,
    assert_from_loopback,
    assert_same,
    commands,
    forwarding,
    free_port,
    honeypot,
    installed,
    logins,
    records,
    refused,
    rejected,
    ssh,
    wait_until,
    workdir,
)
from tests.test_forwarder import stored_events

USERDB = "root:x:!123456\nroot:x:*\n"  # root gets in with any password but 123456; nobody else does
FAILED = [("admin", "admin"), ("root", "123456")]
LET_IN = ("root", "e2e-Pa55w0rd")
COMMAND = "uname -a; cat /etc/passwd"
# What a cowrie.sessions summary carries, as the JSON log's eventids (adapters/cowrie_sessions.py).
SUMMARISED = {
    "cowrie.session.connect", "cowrie.client.version", "cowrie.login.failed", "cowrie.login.success",
    "cowrie.command.input", "cowrie.command.failed", "cowrie.session.file_download", "cowrie.session.closed",
}


def cowrie_cfg(ssh_port: int, hpfeeds_port: int, ident: str, secret: str) -> str:
    return f"""\
[honeypot]
hostname = svr04

[ssh]
listen_endpoints = tcp:{ssh_port}:interface=127.0.0.1

[telnet]
enabled = false

[output_jsonlog]
enabled = true
logfile = ${{honeypot:log_path}}/cowrie.json
epoch_timestamp = false

[output_hpfeeds3]
enabled = true
server = 127.0.0.1
port = {hpfeeds_port}
identifier = {ident}
secret = {secret}
debug = false
"""


def fact(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["action"], event["session"], event.get("username"), event.get("password"), event.get("command"))


def logged_fact(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["eventid"], record["session"], record.get("username"), record.get("password"), record.get("input"))


def test_each_attack_arrives_once_by_the_json_log_and_once_by_hpfeeds(server: RunningServer, tmp_path: Path) -> None:
    venv = installed("cowrie")
    token = server.add_sensor("cowrie-json", honeypot="cowrie")
    server.service.registry.add("cowrie-hpfeeds", honeypot="cowrie", lat=50.11, lon=8.68)
    ident, secret = server.service.registry.enable_hpfeeds("cowrie-hpfeeds")
    endpoint = server.service.hpfeeds[0]
    ssh_port = free_port()
    files = {"etc/cowrie.cfg": cowrie_cfg(ssh_port, endpoint.port, ident, secret), "etc/userdb.txt": USERDB}
    state_dirs = ["var/log/cowrie", "var/lib/cowrie/downloads", "var/lib/cowrie/tty", "var/run"]
    with workdir(files, state_dirs) as home:
        log = home / "var/log/cowrie/cowrie.json"
        with forwarding(log, server.url, token, "cowrie", tmp_path) as stop_forwarding:
            # `cowrie start` in the foreground (COWRIE_STDOUT) so SIGTERM reaches twistd itself
            with honeypot(venv, ["cowrie", "start"], home, [ssh_port], env={"COWRIE_STDOUT": "yes"}):
                wait_until(lambda: endpoint.connection_count == 1, "cowrie's hpfeeds3 output to connect")
                for user, password in FAILED:
                    attempt = ssh(ssh_port, user, password)
                    assert refused(attempt), attempt.stderr
                let_in = ssh(ssh_port, *LET_IN, COMMAND)
                assert let_in.returncode == 0 and "GNU/Linux" in let_in.stdout, let_in.stderr
                wait_until(lambda: sum(r["eventid"] == "cowrie.session.closed" for r in records(log)) == 3,
                           "cowrie to log the three sessions closed")
            logged = records(log)  # cowrie stopped: its log is final
            summarised = [r for r in logged if r["eventid"] in SUMMARISED]
            wait_until(lambda: len(stored_events(server.url, "cowrie-json")) >= len(logged)
                       and len(stored_events(server.url, "cowrie-hpfeeds")) >= len(summarised), "both streams")
            assert stop_forwarding() == len(logged)
    by_log, by_hpfeeds = stored_events(server.url, "cowrie-json"), stored_events(server.url, "cowrie-hpfeeds")

    attacks = Counter([("failure", *pair) for pair in FAILED] + [("success", *LET_IN)])
    for stream in (by_log, by_hpfeeds):
        assert logins(stream) == attacks
        assert commands(stream) == Counter([COMMAND])
    assert_from_loopback(by_log, "cowrie-json", "cowrie")
    assert_from_loopback(by_hpfeeds, "cowrie-hpfeeds", "cowrie")
    assert_each_line_stored_once(by_log, logged, "cowrie.json shipped by honeyatlas forward")
    assert_same(Counter(map(fact, by_hpfeeds)), Counter(map(logged_fact, summarised)), "cowrie.sessions by hpfeeds")
    assert len({e["session"] for e in by_hpfeeds}) == 3
    assert rejected(server.url, {"cowrie-json", "cowrie-hpfeeds"}) == []
