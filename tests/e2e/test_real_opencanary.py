"""OpenCanary 0.9.10 attacked over FTP, HTTP, SSH and Redis; its JSON log shipped by `honeyatlas forward`.

Its hpfeeds output is not used: in 0.9.10 it sends only the first event (docs/hpfeeds.md).
"""

from __future__ import annotations

import ftplib
import json
import socket
from collections import Counter
from pathlib import Path

import httpx

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

FTP_LOGINS = [("admin", "ftp-e2e-1"), ("root", "ftp-e2e-2")]
HTTP_LOGIN = ("nasadmin", "http-e2e")
SSH_LOGIN = ("admin", "ssh-e2e")
REDIS_COMMAND = "KEYS *"
# OpenCanary 0.9.10's SSH sends its KEXINIT a second time, and drops the connection, when the
# client's first segment holds both its version and a KEXINIT naming "libssh" (a check meant for
# libssh clients, opencanary/modules/ssh.py); OpenSSH offers curve25519-sha256@libssh.org, so
# whether it is dropped depends on TCP segmentation. Offering only the RFC name makes it certain.
ONLY_RFC_KEX_NAME = ["-o", "KexAlgorithms=curve25519-sha256"]
OWN_MESSAGES = range(1000, 1007)  # OpenCanary's boot and status messages: ignored, not attacks


def opencanary_conf(ports: dict[str, int]) -> str:
    settings = {
        "device.node_id": "e2e-canary", "device.listen_addr": "127.0.0.1",
        "ftp.enabled": True, "ftp.port": ports["ftp"], "ftp.banner": "FTP server ready",
        "http.enabled": True, "http.port": ports["http"], "http.skin": "nasLogin", "http.banner": "Apache/2.2.22 (Ubuntu)",
        "ssh.enabled": True, "ssh.port": ports["ssh"], "ssh.version": "SSH-2.0-OpenSSH_5.1p1 Debian-4",
        "redis.enabled": True, "redis.port": ports["redis"],
        "logger": {"class": "PyLogger", "kwargs": {
            "formatters": {"plain": {"format": "%(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": "opencanary.log"}},
        }},
    }
    return json.dumps(settings, indent=1)


def ftp_login(port: int, user: str, password: str) -> None:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=10)
        try:
            ftp.login(user, password)
        except ftplib.error_perm as refusal:
            assert str(refusal).startswith("530"), refusal
        else:
            raise AssertionError("OpenCanary let an FTP login in")


def redis_command(port: int, *words: str) -> bytes:
    """One command in RESP, as redis-cli sends it; returns the first bytes of the answer."""
    request = f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        return connection.recv(1024)


def test_each_attack_arrives_once_attributed_to_the_canary(server: RunningServer, tmp_path: Path) -> None:
    venv = installed("opencanary")
    token = server.add_sensor("canary-01", honeypot="opencanary")
    ports = {service: free_port() for service in ("ftp", "http", "ssh", "redis")}
    with workdir({"opencanary.conf": opencanary_conf(ports)}) as home:  # read from the working directory
        log = home / "opencanary.log"
        twistd = ["twistd", "--nodaemon", "--pidfile=", "--python", str(venv / "bin/opencanary.tac")]
        with forwarding(log, server.url, token, "opencanary", tmp_path) as stop_forwarding:
            with honeypot(venv, twistd, home, list(ports.values())):
                for user, password in FTP_LOGINS:
                    ftp_login(ports["ftp"], user, password)
                page = httpx.post(f"http://127.0.0.1:{ports['http']}/index.html",
                                  data={"username": HTTP_LOGIN[0], "password": HTTP_LOGIN[1]}, timeout=10)
                assert page.status_code == 200
                attempt = ssh(ports["ssh"], *SSH_LOGIN, options=ONLY_RFC_KEX_NAME)
                assert refused(attempt), attempt.stderr
                assert redis_command(ports["redis"], *REDIS_COMMAND.split())
                wait_until(lambda: sum(r["logtype"] in (2000, 3001, 4002, 17001) for r in records(log)) == 5,
                           "OpenCanary to log the five attacks")
            logged = records(log)  # OpenCanary stopped: its log is final
            attacks = [r for r in logged if r["logtype"] not in OWN_MESSAGES]
            wait_until(lambda: len(stored_events(server.url, "canary-01")) >= len(attacks), "the log to arrive")
            assert stop_forwarding() == len(logged)
    stored = stored_events(server.url, "canary-01")

    expected = [("failure", *login) for login in [*FTP_LOGINS, HTTP_LOGIN, SSH_LOGIN]]
    assert logins(stored) == Counter(expected)
    assert commands(stored) == Counter([REDIS_COMMAND])
    assert {e["protocol"] for e in stored if e["kind"] == "login_attempt"} == {"ftp", "http", "ssh"}
    assert_from_loopback(stored, "canary-01", "opencanary")
    assert_each_line_stored_once(stored, attacks, "opencanary.log shipped by honeyatlas forward")
    assert rejected(server.url, {"canary-01"}) == []
