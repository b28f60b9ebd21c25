"""Crash test: the forwarder and the server as processes, each killed with SIGKILL at seeded random
moments while the log grows; at the end every log line is stored exactly once.

The server process is `python -m honeyatlas serve`.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.auth import grant_in, token_for
from tests.test_forwarder import assert_each_line_once, command_line, stored_events


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _read_line(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if marker in line:
                return line
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"{marker!r} not printed by {process.args}")


class ServerProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "honeyatlas", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
        )
        line = _read_line(self.process, "serving on", 30)
        url = line.split("serving on ", 1)[1].split()[0]
        self.port = int(url.rstrip("/").rsplit(":", 1)[1])  # restarts keep the forwarder's URL valid
        if not token_for(url):
            grant_in(url, self.data_dir)  # a reader for the checks (tests/auth.py)
        return url

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def _sensor_token(data_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "honeyatlas", "sensor", "add", "cowrie-01", "--honeypot", "cowrie",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, env=_env(),
    )
    return result.stdout.split("store it now): ", 1)[1].split()[0]


@contextmanager
def _growing_log(log: Path, total: int, seconds: float) -> Iterator[list[int]]:
    """Append `total` unique lines over about `seconds` from a thread; yields [lines written]."""
    written = [0]
    stop = threading.Event()

    def write() -> None:
        pause = seconds / total * 10
        for n in range(total):
            if stop.is_set():
                return
            with log.open("a") as out:
                out.write(command_line(n))
            written[0] = n + 1
            if n % 10 == 9:
                time.sleep(pause)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield written
    finally:
        thread.join(seconds * 3)
        stop.set()


def test_kill_9_of_forwarder_and_server_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20241127)
    data_dir = tmp_path / "data"
    token = _sensor_token(data_dir)
    server = ServerProcess(data_dir)
    url = server.start()
    log = tmp_path / "cowrie.json"
    log.touch()
    state = tmp_path / "forward.state"
    forward_command = [
        sys.executable, "-m", "honeyatlas.forwarder", "--file", str(log), "--url", url, "--token", token,
        "--format", "cowrie", "--state", str(state), "--batch-max-records", "40",
        "--flush-interval-seconds", "0.05", "--backoff-max-seconds", "0.4",
    ]

    def start_forwarder() -> subprocess.Popen[str]:
        return subprocess.Popen(forward_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                env=_env())

    forwarder = start_forwarder()
    total = 4000
    kills = {"forwarder": 0, "server": 0}
    try:
        with _growing_log(log, total, seconds=14) as written:
            deadline = time.monotonic() + 16
            victim = "forwarder"
            while written[0] < total and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.4, 1.6))
                if victim == "forwarder":
                    forwarder.send_signal(signal.SIGKILL)
                    forwarder.wait(10)
                    time.sleep(rng.uniform(0.0, 0.5))
                    forwarder = start_forwarder()
                else:
                    server.kill()
                    time.sleep(rng.uniform(0.0, 0.5))
                    server.start()
                kills[victim] += 1
                victim = "server" if victim == "forwarder" else "forwarder"
        assert written[0] == total
        assert kills["forwarder"] >= 3 and kills["server"] >= 3, kills
        deadline = time.monotonic() + 30
        while len(stored_events(url, "cowrie-01")) < total and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(0.5)  # a duplicate would arrive with the last batches
        assert_each_line_once(url, "cowrie-01", total)
    finally:
        forwarder.send_signal(signal.SIGTERM)
        try:
            forwarder.wait(10)
        except subprocess.TimeoutExpired:
            forwarder.kill()
        if server.process is not None and server.process.poll() is None:
            server.kill()
