"""qeeqbox honeypots 0.66 (its SSH service) attacked with OpenSSH; its JSON log shipped by `honeyatlas forward`.

Only the SSH service runs: it binds the address it is given, while qeeqbox's FTP and HTTP
services bind 0.0.0.0 whatever they are told (docs/real-honeypots.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import RunningServer
from tests.e2e.lab import (
    assert_each_line_stored_once,
    assert_from_loopback,
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

ACCOUNT = ("admin", "qb-e2e-secret")
FAILED = [("admin", "wrong-e2e-1"), ("root", "wrong-e2e-2")]
COMMAND = "uname -a"
OWN_ACTIONS = {"process", "setup"}  # qeeqbox starting its services: ignored, not attacks


def honeypots_config(port: int) -> str:
    ssh = {
        "ip": "127.0.0.1", "port": port, "username": ACCOUNT[0], "password": ACCOUNT[1],
        "options": ["capture_commands"], "log_file_name": "ssh.jsonl", "max_bytes": 10_000_000,  # no rotation
    }
    return json.dumps({
        "logs": "file", "logs_location": "logs",
        "custom_filter": {"honeypots": {"options": ["dump_json_to_file"]}},  # one JSON object per line
        "honeypots": {"ssh": ssh},
    }, indent=1)


def test_each_attack_arrives_once_attributed_to_the_sensor(server: RunningServer, tmp_path: Path) -> None:
    venv = installed("qeeqbox")
    token = server.add_sensor("qeeqbox-01", honeypot="qeeqbox")
    port = free_port()
    with workdir({"config.json": honeypots_config(port)}, ["logs"]) as home:
        log = home / "logs/ssh.jsonl"
        # SIGTERM stops it (never --kill: that kills every honeypot on the machine)
        argv = ["python", "-m", "honeypots", "--setup", f"ssh:{port}", "--config", "config.json",
                "--termination-strategy", "signal"]
        with forwarding(log, server.url, token, "qeeqbox", tmp_path) as stop_forwarding:
            with honeypot(venv, argv, home, [port]):
                for user, password in FAILED:
                    attempt = ssh(port, user, password)
                    assert refused(attempt), attempt.stderr
                ssh(port, *ACCOUNT, COMMAND)  # let in; the command is logged but never answered
                wait_until(lambda: sum(r["action"] in ("login", "command") for r in records(log)) == 4,
                           "qeeqbox to log the logins and the command")
            logged = records(log)  # qeeqbox stopped: its log is final
            attacks = [r for r in logged if r["action"] not in OWN_ACTIONS]
            wait_until(lambda: len(stored_events(server.url, "qeeqbox-01")) >= len(attacks), "the log to arrive")
            assert stop_forwarding() == len(logged)
    stored = stored_events(server.url, "qeeqbox-01")

    assert logins(stored) == Counter([("failure", *pair) for pair in FAILED] + [("success", *ACCOUNT)])
    assert commands(stored) == Counter([COMMAND])
    assert_from_loopback(stored, "qeeqbox-01", "qeeqbox")
    assert_each_line_stored_once(stored, attacks, "ssh.jsonl shipped by honeyatlas forward")
    assert rejected(server.url, {"qeeqbox-01"}) == []
