"""The server-side file source: a honeypot's log on the server's host, followed across
rotation and restarts, every line stored exactly once (receipts make a crash-time retry
harmless), waiting for its sensor, and the config errors."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from honeyatlas.config import load_config
from honeyatlas.errors import ConfigError
from honeyatlas.service import Service
from honeyatlas.sources.file import parse_follow, state_path_for
from honeyatlas.sources.follow import Batch, FileId, write_state
from tests.conftest import SAMPLES, start_server
from tests.test_forwarder import assert_each_line_once, command_line, stored_events
from tests.test_ingest_http import post
from tests.waiting import wait_until

FAST = {"batch_max_records": 40, "poll_interval_seconds": 0.02}


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    wait_until(predicate, what, timeout)


def follow(log: Path, sensor: str, fmt: str = "cowrie") -> dict[str, object]:
    return {"follow": [f"{log}?format={fmt}&sensor={sensor}"], **FAST}


def test_real_cowrie_log_followed_like_an_http_post(tmp_path: Path) -> None:
    log = tmp_path / "cowrie.json"
    lines = (SAMPLES / "cowrie.json").read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:30]))
    server, stop = start_server(tmp_path / "data", file=follow(log, "lab"))
    try:
        server.add_sensor("lab")
        with log.open("a") as out:  # the honeypot keeps writing, a torn line at the end
            out.write("".join(lines[30:]) + '{"eventid": "cowrie.session.conn')
        reference = server.add_sensor("reference")
        assert post(server, reference, "".join(lines).encode()).status_code == 200
        expected = len(stored_events(server.url, "reference"))
        wait_for(lambda: len(stored_events(server.url, "lab")) == expected, 20, "the whole log")
        time.sleep(0.3)  # the torn last line is not taken before it is complete
        assert len(stored_events(server.url, "lab")) == expected
        strip = ("id", "ingest_ts", "sensor", "raw")
        ours = sorted(json.dumps({k: v for k, v in e.items() if k not in strip}, sort_keys=True)
                      for e in stored_events(server.url, "lab"))
        theirs = sorted(json.dumps({k: v for k, v in e.items() if k not in strip}, sort_keys=True)
                        for e in stored_events(server.url, "reference"))
        assert ours == theirs
        metrics = httpx.get(f"{server.url}metrics").text
        assert f'honeyatlas_file_source_lines_delivered_total{{sensor="lab",file="cowrie.json"}} {len(lines)}' in metrics
    finally:
        stop()


def test_rotation_restart_and_a_sensor_added_late_lose_and_repeat_nothing(tmp_path: Path) -> None:
    log = tmp_path / "honeypot.json"
    data = tmp_path / "data"
    with log.open("w") as out:
        out.writelines(command_line(n) for n in range(200))
    server, stop = start_server(data, file=follow(log, "late"))
    try:
        time.sleep(0.5)  # no such sensor yet: the source waits, the file is the buffer
        assert stored_events(server.url, "late") == []
        server.add_sensor("late")
        wait_for(lambda: len(stored_events(server.url, "late")) == 200, 20, "the first 200 lines")
        os.rename(log, tmp_path / "honeypot.json.1")  # rename-and-create, the old file grows a bit more
        with (tmp_path / "honeypot.json.1").open("a") as out:
            out.writelines(command_line(n) for n in range(200, 250))
        with log.open("w") as out:
            out.writelines(command_line(n) for n in range(250, 400))
        wait_for(lambda: len(stored_events(server.url, "late")) == 400, 20, "both files")
    finally:
        stop()
    with log.open("a") as out:  # written while the server is down
        out.writelines(command_line(n) for n in range(400, 500))
    server, stop = start_server(data, file=follow(log, "late"))
    try:
        wait_for(lambda: len(stored_events(server.url, "late")) >= 500, 20, "the lines written while down")
        time.sleep(0.3)
        assert_each_line_once(server.url, "late", 500)
    finally:
        stop()


def test_a_batch_stored_before_a_crash_is_not_stored_again(tmp_path: Path) -> None:
    """Crash after the commit, before the position was saved: the state still names the batch
    in flight; its receipt, committed with the events, says it is stored."""
    log = tmp_path / "honeypot.json"
    data = tmp_path / "data"
    with log.open("w") as out:
        out.writelines(command_line(n) for n in range(30))
    server, stop = start_server(data, file=follow(log, "s1"))
    try:
        server.add_sensor("s1")
        wait_for(lambda: len(stored_events(server.url, "s1")) == 30, 20, "the 30 lines")
    finally:
        stop()
    spec = parse_follow(f"{log}?format=cowrie&sensor=s1")
    state_path = state_path_for(data / "file-offsets", spec)
    saved = json.loads(state_path.read_text())
    assert saved["offset"] == log.stat().st_size and saved["inflight"] is None
    body = log.read_bytes()
    file = FileId(**saved["file"])
    batch = Batch(file, 0, len(body), body, 30)
    write_state(state_path, {"version": 1, "file": saved["file"], "offset": 0,
                             "inflight": {"file": saved["file"], "start": 0, "end": len(body), "key": batch.key}})
    server, stop = start_server(data, file=follow(log, "s1"))
    try:
        wait_for(lambda: json.loads(state_path.read_text())["offset"] == len(body), 20, "the position to move on")
        assert_each_line_once(server.url, "s1", 30)
    finally:
        stop()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("/var/log/x.json", "use PATH?format=NAME&sensor=NAME"),
        ("/var/log/x.json?format=cowrie", "add sensor=NAME"),
        ("/var/log/x.json?sensor=a", "add format=NAME"),
        ("/var/log/x.json?format=cowrie&sensor=a&tail=1", "unknown option 'tail'"),
        ("/var/log/x.json?format=nope&sensor=a", "unknown format 'nope'"),
    ],
)
def test_follow_entries_are_checked_at_start(tmp_path: Path, entry: str, message: str) -> None:
    config = load_config(None, environ={}, overrides={"storage": {"data_dir": str(tmp_path)}, "file": {"follow": [entry]}})
    with pytest.raises(ConfigError, match=r"file\.follow") as caught:
        Service(config)
    assert message in str(caught.value)
