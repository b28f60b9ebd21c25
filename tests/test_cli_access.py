"""The `user`, `token` and new `sensor` commands, run as an operator would (a subprocess each),
against the files a real `serve` is using at the same time; and the modes of every file a
server writes in its data directory."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from honeyatlas.access import Principal, Role
from honeyatlas.store.accounts import SQLiteAccounts, login_hint
from honeyatlas.store.postgres_accounts import PostgresAccounts
from honeyatlas.store.postgres_registry import PostgresSensorRegistry
from honeyatlas.store.registry import SensorRegistry
from tests.engines.postgres import PostgresServer

HONEYATLAS = [sys.executable, "-m", "honeyatlas"]
SHOWN_ONCE = "(shown once, store it now): "


def run(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    return subprocess.run([*HONEYATLAS, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=60, env=env, input=stdin)


def shown(result: subprocess.CompletedProcess[str], label: str = "") -> str:
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if SHOWN_ONCE in line and line.startswith(label)]
    assert len(lines) == 1, result.stdout
    return lines[0].split(SHOWN_ONCE, 1)[1]


def failed(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("honeyatlas: error: ") and message in result.stderr, result.stderr


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[SQLiteAccounts]:
    """The accounts file the commands write, opened as the server opens it."""
    found = SQLiteAccounts(tmp_path / "accounts.sqlite3")
    found.open()
    yield found
    found.close()


def test_user_commands(tmp_path: Path, accounts: SQLiteAccounts) -> None:
    hint = login_hint(accounts, f"--data-dir {tmp_path}")  # what serve prints while nobody can log in
    assert hint is not None and f"honeyatlas user ensure-admin --data-dir {tmp_path}`" in hint
    password = shown(run("user", "add", "alice", "--role", "admin", data_dir=tmp_path), "password")
    assert len(password) == 24
    assert accounts.verify_password("alice", password) == Principal(name="alice", role=Role.ADMIN, via="session")
    assert login_hint(accounts) is None

    chosen = "a passphrase of my own"
    added = run("user", "add", "bob", "--role", "analyst", "--password-stdin", data_dir=tmp_path, stdin=chosen + "\n")
    assert added.returncode == 0 and "bob" in added.stdout and chosen not in added.stdout and "password" not in added.stdout
    assert accounts.verify_password("bob", chosen) is not None
    failed(run("user", "add", "carol", "--role", "analyst", "--password-stdin", data_dir=tmp_path, stdin="too short\n"),
           "password too short: use at least 12 characters")
    failed(run("user", "add", "carol", "--role", "analyst", "--password-stdin", data_dir=tmp_path, stdin=""),
           "no password on standard input")
    failed(run("user", "add", "alice", "--role", "analyst", data_dir=tmp_path), "user 'alice' already exists")
    failed(run("user", "add", "bad name", "--role", "analyst", data_dir=tmp_path), "invalid user name 'bad name'")
    bad_role = run("user", "add", "carol", "--role", "root", data_dir=tmp_path)
    assert bad_role.returncode == 2 and "invalid choice: 'root'" in bad_role.stderr

    bob = accounts.verify_password("bob", chosen)
    assert bob is not None
    session = accounts.open_session(bob, 3600)
    renewed = shown(run("user", "passwd", "bob", data_dir=tmp_path), "password")
    assert accounts.session(session) is None  # the running server's sessions of bob end
    assert accounts.verify_password("bob", chosen) is None and accounts.verify_password("bob", renewed) is not None
    assert run("user", "passwd", "bob", "--password-stdin", data_dir=tmp_path, stdin=chosen).returncode == 0
    assert accounts.verify_password("bob", chosen) is not None
    failed(run("user", "passwd", "nobody", data_dir=tmp_path), "no user named 'nobody'")

    listed = run("user", "list", data_dir=tmp_path)
    as_json = json.loads(run("user", "list", "--json", data_dir=tmp_path).stdout)
    assert [(u["name"], u["role"]) for u in as_json] == [("alice", "admin"), ("bob", "analyst")]
    for secret in (password, renewed, chosen, "$argon2"):
        assert secret not in listed.stdout and secret not in json.dumps(as_json)
    assert "alice" in listed.stdout and "analyst" in listed.stdout

    assert run("user", "remove", "bob", data_dir=tmp_path).returncode == 0
    assert accounts.verify_password("bob", chosen) is None
    failed(run("user", "remove", "bob", data_dir=tmp_path), "no user named 'bob'; see `honeyatlas user list`")


def test_ensure_admin_only_when_nobody_can_log_in(tmp_path: Path, accounts: SQLiteAccounts) -> None:
    first = run("user", "ensure-admin", data_dir=tmp_path)
    password = shown(first, "password")
    assert accounts.verify_password("admin", password) == Principal(name="admin", role=Role.ADMIN, via="session")
    again = run("user", "ensure-admin", data_dir=tmp_path)
    assert again.returncode == 0 and again.stdout == ""  # `make run` the second time: nothing said, nothing changed
    assert accounts.verify_password("admin", password) is not None

    other = tmp_path / "other"
    assert run("user", "add", "ops", "--role", "analyst", data_dir=other).returncode == 0
    assert run("user", "ensure-admin", data_dir=other).stdout == ""  # someone exists: no admin is made


def test_token_commands(tmp_path: Path, accounts: SQLiteAccounts) -> None:
    token = shown(run("token", "add", "siem", "--role", "analyst", data_dir=tmp_path), "token")
    assert token.startswith("hat_r_")
    assert accounts.authenticate_token(token) == Principal(name="siem", role=Role.ANALYST, via="token")
    failed(run("token", "add", "siem", "--role", "admin", data_dir=tmp_path), "token 'siem' already exists")

    listed = run("token", "list", data_dir=tmp_path)
    assert "siem" in listed.stdout and "active" in listed.stdout and token.split("_")[3] not in listed.stdout
    assert token[:20] not in listed.stdout

    assert run("token", "revoke", "siem", data_dir=tmp_path).returncode == 0
    assert accounts.authenticate_token(token) is None  # at once, for the process that had it open
    failed(run("token", "revoke", "nobody", data_dir=tmp_path), "no token named 'nobody'")
    as_json = json.loads(run("token", "list", "--json", data_dir=tmp_path).stdout)
    assert [(t["name"], t["role"], t["revoked"]) for t in as_json] == [("siem", "analyst", True)]


def test_sensor_rotate_set_and_add_again(tmp_path: Path) -> None:
    first = shown(run("sensor", "add", "edge-01", "--honeypot", "cowrie", "--hpfeeds", "--rate", "50",
                      "--syslog-from", "192.0.2.7,198.51.100.0/24", data_dir=tmp_path), "ingest token")
    registry = SensorRegistry(tmp_path / "registry.sqlite3")  # the server's view, open the whole time
    registry.open()
    try:
        sensor = registry.get("edge-01")
        assert sensor is not None
        assert (sensor.formats, sensor.rate_per_second, sensor.burst, sensor.syslog_sources) == (
            None, 50.0, None, ("192.0.2.7/32", "198.51.100.0/24"))

        rotated = run("sensor", "rotate", "edge-01", "--grace-seconds", "1", data_dir=tmp_path)
        second, secret = shown(rotated, "new ingest token"), shown(rotated, "new hpfeeds secret")
        assert "old credentials keep working until" in rotated.stdout
        assert registry.authenticate(first) is not None and registry.authenticate(second) is not None
        assert registry.hpfeeds_secrets("edge-01")[1][0] == secret  # type: ignore[index]
        time.sleep(1.1)
        assert registry.authenticate(first) is None and registry.authenticate(second) is not None

        changed = run("sensor", "set", "edge-01", "--formats", "cowrie,auto", "--burst", "100", "--rate", "default",
                      data_dir=tmp_path)
        assert changed.returncode == 0, changed.stderr
        assert "formats cowrie,auto; rate default, burst 100" in changed.stdout
        assert registry.get("edge-01").settings.formats == ("cowrie", "auto")  # type: ignore[union-attr]
        assert run("sensor", "set", "edge-01", "--syslog-from", "none", data_dir=tmp_path).returncode == 0
        got = registry.get("edge-01")
        assert got is not None and (got.formats, got.rate_per_second, got.burst, got.syslog_sources) == (
            ("cowrie", "auto"), None, 100, ())
        failed(run("sensor", "set", "edge-01", "--formats", "cowrie,nope", data_dir=tmp_path),
               "--formats nope: give known formats")
        failed(run("sensor", "set", "edge-01", "--syslog-from", "example.org", data_dir=tmp_path),
               "invalid syslog source 'example.org'")
        failed(run("sensor", "set", "nobody", "--burst", "1", data_dir=tmp_path), "no sensor named 'nobody'")
        bad_rate = run("sensor", "set", "edge-01", "--rate", "fast", data_dir=tmp_path)
        assert bad_rate.returncode == 2 and "expected a number or default" in bad_rate.stderr
        assert "burst 100" in run("sensor", "list", data_dir=tmp_path).stdout

        assert run("sensor", "revoke", "edge-01", data_dir=tmp_path).returncode == 0
        failed(run("sensor", "rotate", "edge-01", data_dir=tmp_path), "is revoked; add it again")
        again = shown(run("sensor", "add", "edge-01", "--honeypot", "dionaea", data_dir=tmp_path), "ingest token")
        assert registry.authenticate(second) is None
        renewed = registry.authenticate(again)
        assert renewed is not None and (renewed.honeypot, renewed.burst) == ("dionaea", None)
    finally:
        registry.close()


def _modes(root: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def test_a_served_data_directory_is_owner_only(tmp_path: Path) -> None:
    """A real `serve` (started with a permissive umask) ingests over HTTP with an idempotency
    key, dead-letters a bad record, follows a log file, while the commands add a user and a
    token; then every directory in the data directory is 0700 and every file 0600."""
    data = tmp_path / "data"
    token = shown(run("sensor", "add", "edge-01", "--honeypot", "cowrie", "--hpfeeds", data_dir=data), "ingest token")
    log = tmp_path / "cowrie.json"
    record = {"eventid": "cowrie.session.connect", "src_ip": "8.8.8.8", "timestamp": "2026-01-01T00:00:00Z",
              "session": "s1", "src_port": 4444, "dst_port": 22}
    log.write_text(json.dumps(record) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    env["HONEYATLAS_GEOIP_SEARCH_CITY_DB"] = "false"
    proc = subprocess.Popen(
        [*HONEYATLAS, "serve", "--port", "0", "--data-dir", str(data), "--follow", f"{log}?format=cowrie&sensor=edge-01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=lambda: os.umask(0o022))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("serving on ", 1)[1].split()[0]
        sent = httpx.post(f"{url}api/v1/ingest/cowrie", json=[record | {"session": "s2"}, {"no": "eventid"}],
                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-1"}, timeout=30)
        assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
        # The commands work while the server has the same files open.
        assert run("user", "ensure-admin", data_dir=data).returncode == 0
        assert run("token", "add", "siem", "--role", "analyst", data_dir=data).returncode == 0
        deadline = time.monotonic() + 30
        while not any((data / "file-offsets").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    modes = _modes(data)
    expected = {"accounts.sqlite3", "registry.sqlite3", "idempotency.sqlite3", "events.duckdb", "file-offsets"}
    assert expected <= set(modes), sorted(modes)
    wrong = {name: mode for name, mode in modes.items()
             if mode != ("0o700" if name == "." or (data / name).is_dir() else "0o600")}
    assert not wrong, wrong


def test_the_commands_use_postgresql_when_configured(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """`storage.backend = "postgresql"` (a cluster): users, tokens and sensor settings go to the
    shared database, where every role process reads them."""
    url = postgres_server.new_database()
    config = tmp_path / "honeyatlas.toml"
    config.write_text(f'[storage]\nbackend = "postgresql"\nurl = "{url}"\n')
    state = ("--config", str(config))
    password = shown(run("user", "ensure-admin", *state, data_dir=tmp_path), "password")
    token = shown(run("token", "add", "siem", "--role", "analyst", *state, data_dir=tmp_path), "token")
    assert run("sensor", "add", "edge-01", "--honeypot", "cowrie", "--burst", "9", *state, data_dir=tmp_path).returncode == 0
    assert not (tmp_path / "accounts.sqlite3").exists()
    accounts = PostgresAccounts(url)
    registry = PostgresSensorRegistry(url)
    accounts.open()
    registry.open()
    try:
        assert accounts.verify_password("admin", password) is not None
        assert accounts.authenticate_token(token) == Principal(name="siem", role=Role.ANALYST, via="token")
        assert registry.get("edge-01").burst == 9  # type: ignore[union-attr]
    finally:
        accounts.close()
        registry.close()
