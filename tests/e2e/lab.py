"""The lab of the end-to-end tests: real honeypots on 127.0.0.1, attacked and shipped for real.

scripts/honeypots-setup installs each honeypot in its own virtualenv under PREFIX and creates the
unprivileged USER they run as (cowrie refuses root). This module starts them as that user,
attacks them with OpenSSH's client through sshpass, ships their logs with the `honeyatlas forward`
command and reads back what the server stored. Every process is the real program; nothing here
is a double. Readiness and arrival are polled with a deadline, never slept on.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import waiting

PREFIX = Path(os.environ.get("HONEYATLAS_HONEYPOTS_DIR", "/opt/honeyatlas-honeypots"))
USER = os.environ.get("HONEYATLAS_HONEYPOTS_USER", "honeyatlas-hp")
SETUP = "scripts/honeypots-setup"
HONEYATLAS = Path(sys.executable).with_name("honeyatlas")  # the CLI of the venv running the tests
DEADLINE_SECONDS = 30.0
SSH_OPTIONS = [
    "-F", "/dev/null",  # no user or site config: the same client everywhere
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
    "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
]

Record = dict[str, Any]


def installed(name: str) -> Path:
    """The virtualenv of honeypot `name`; fails the test (never skips) when the setup did not finish."""
    venv = PREFIX / name
    problems = [f"{tool} is missing" for tool in ("ssh", "sshpass", "setpriv") if shutil.which(tool) is None]
    if not (venv / ".honeyatlas-stamp").is_file():
        problems.append(f"{venv} is not installed")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            problems.append(f"user {USER} does not exist")
    if problems:
        pytest.fail(f"{'; '.join(problems)}: run {SETUP} as root (make test does), then the tests again", pytrace=False)
    return venv


def free_port() -> int:
    """A port free on 127.0.0.1 now (the honeypots need explicit ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:port, read from /proc: a probe connection would be an event."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(fields[1] == wanted and fields[3] == "0A" for fields in map(str.split, table) if len(fields) > 3)


def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    waiting.wait_until(check, what, timeout, interval=0.1)


@contextmanager
def workdir(files: dict[str, str], dirs: Iterable[str] = ()) -> Iterator[Path]:
    """A fresh directory holding `files` and `dirs`, owned by the honeypot's user (tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="honeyatlas-e2e-"))
    try:
        for name, text in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
        for name in dirs:
            (path / name).mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        if os.geteuid() == 0:
            user = pwd.getpwnam(USER)
            for item in [path, *path.rglob("*")]:
                os.chown(item, user.pw_uid, user.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def honeypot(
    venv: Path, argv: list[str], cwd: Path, ports: list[int], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a honeypot as the unprivileged user in its own process group until it listens on `ports`;
    stops it with SIGTERM on the way out, whatever happened, and kills what is left of its group."""
    if os.geteuid() == 0:
        argv = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--", *argv]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8", **(env or {})}
    output = cwd / "honeypot.out"
    with output.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: process.poll() is not None or all(map(listening, ports)), f"{argv} to listen on {ports}")
        assert process.poll() is None, f"{argv} exited with {process.returncode}:\n{tail(output)}"
        yield process
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(20)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its children (qeeqbox runs each service in one)
        process.wait(10)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def ssh(
    port: int, user: str, password: str, command: str = "true", options: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """One password login with OpenSSH's client (sshpass types the password), running `command` if let in."""
    return subprocess.run(
        ["sshpass", "-e", "ssh", *SSH_OPTIONS, *options, "-p", str(port), f"{user}@127.0.0.1", command],
        env={"PATH": os.environ["PATH"], "SSHPASS": password}, capture_output=True, text=True, timeout=60,
    )


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether the server answered the password with a refusal (so the login attempt reached it)."""
    return "Permission denied" in result.stderr


@contextmanager
def forwarding(log: Path, url: str, token: str, fmt: str, scratch: Path) -> Iterator[Callable[[], int]]:
    """`honeyatlas forward` following `log`, as its own process; yields `stop`, which stops it as an
    operator would (SIGTERM) and returns how many lines it says it forwarded."""
    errors = scratch / f"forward-{log.name}.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")} | {"HONEYATLAS_TOKEN": token}
    argv = [str(HONEYATLAS), "forward", "--file", str(log), "--url", url, "--format", fmt,
            "--state", str(scratch / f"{log.name}.state"), "--flush-interval-seconds", "0.2"]
    with errors.open("w") as err:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)

    def stop() -> int:
        process.terminate()
        assert process.wait(30) == 0, tail(errors)
        found = re.search(r"forwarded (\d+) lines", errors.read_text())
        assert found, tail(errors)
        return int(found.group(1))

    try:
        yield stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def records(log: Path) -> list[Record]:
    """The honeypot's own log, one JSON object per line."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def rejected(url: str, sensors: set[str]) -> list[Record]:
    """Dead letters (records the server could not turn into events) of these sensors."""
    letters = httpx.get(f"{url}api/v1/rejected", params={"limit": 1000}, timeout=30).raise_for_status().json()
    return [letter for letter in letters["rejected"] if letter["sensor"] in sensors]


def assert_same(stored: Counter[Any], logged: Counter[Any], what: str) -> None:
    """Equal multisets, with what is missing and what is extra named when they are not."""
    assert stored == logged, f"{what}: missing {dict(logged - stored)}, extra {dict(stored - logged)}"


def assert_each_line_stored_once(stored: list[Record], logged: list[Record], what: str) -> None:
    """Each log line became exactly one event, whose raw record is that line."""
    assert_same(Counter(_canonical(json.loads(e["raw"])) for e in stored), Counter(map(_canonical, logged)), what)


def _canonical(record: Record) -> str:
    return json.dumps(record, sort_keys=True)


def assert_from_loopback(stored: list[Record], sensor: str, honeypot: str) -> None:
    """Attributed to the sensor that saw them, from 127.0.0.1 and flagged so (never located)."""
    assert stored, f"nothing stored for {sensor}"
    assert {(e["sensor"], e["honeypot"]) for e in stored} == {(sensor, honeypot)}
    assert {e["src_ip"] for e in stored} == {"127.0.0.1"}
    assert all("loopback_source" in e.get("flags", ()) for e in stored)


def logins(stored: list[Record]) -> Counter[tuple[str, str, str]]:
    """(outcome, username, password) of every login attempt."""
    return Counter((e["outcome"], e["username"], e["password"]) for e in stored if e["kind"] == "login_attempt")


def commands(stored: list[Record]) -> Counter[str]:
    return Counter(e["command"] for e in stored if e["kind"] == "command")
