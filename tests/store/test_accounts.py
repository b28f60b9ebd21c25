"""The `Accounts` protocol, one suite over both backends: SQLite files and the real PostgreSQL
server. Users and passwords (argon2id, rehash, the dummy hash for unknown names), sessions
(expiry, logout, ended by a password change and by removal, bounded), read tokens (hashed,
revoked at once, last use written at most once a minute)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from honeyatlas.access import Principal, Role
from honeyatlas.errors import RegistryError
from honeyatlas.store.accounts import (
    MAX_SESSIONS_PER_USER,
    PASSWORD_HASHER,
    SQLAccounts,
    SQLiteAccounts,
    login_hint,
)
from honeyatlas.store.postgres_accounts import PostgresAccounts
from tests.store import backends

PASSWORD = "correct horse battery"


class RecordingHasher(PasswordHasher):
    """The real argon2id hasher (cheap parameters, so the suite stays fast), noting which
    hashes it was asked to check."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**({"time_cost": 1, "memory_cost": 8192, "parallelism": 1} | params))
        self.checked: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # argon2 names it so
        self.checked.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


Backend = backends.Backend[SQLAccounts]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backends.backend_of(request, tmp_path / "accounts.sqlite3", SQLiteAccounts, PostgresAccounts)


def test_users_passwords_and_the_dummy_hash(backend: Backend) -> None:
    hasher = RecordingHasher()
    accounts = backend.open(hasher=hasher)
    assert not accounts.has_users() and login_hint(accounts) is not None
    accounts.add_user("alice", Role.ADMIN, PASSWORD)
    accounts.add_user("bob", Role.ANALYST, PASSWORD + "!")
    assert accounts.has_users() and login_hint(accounts) is None
    assert [(u.name, u.role, u.last_login) for u in accounts.users()] == [
        ("alice", Role.ADMIN, None), ("bob", Role.ANALYST, None)]

    stored = dict(backend.stored("SELECT name, password_hash FROM users"))
    assert stored["alice"].startswith("$argon2id$") and PASSWORD not in stored["alice"]

    assert accounts.verify_password("alice", PASSWORD) == Principal(name="alice", role=Role.ADMIN, via="session")
    assert hasher.checked[-1] == stored["alice"]
    assert accounts.users()[0].last_login is not None
    assert accounts.verify_password("alice", PASSWORD + "!") is None  # bob's password, not hers
    assert accounts.verify_password("Alice", PASSWORD) is None  # names are case-sensitive

    # An unknown name costs one argon2 check as well: against the dummy hash, never skipped.
    hasher.checked.clear()
    assert accounts.verify_password("mallory", PASSWORD) is None
    assert accounts.verify_password("mallory2", "x" * 5000) is None
    assert len(hasher.checked) == 2 and hasher.checked[0] == hasher.checked[1]
    dummy = hasher.checked[0]
    assert dummy.startswith("$argon2id$v=19$m=8192,t=1,p=1$") and dummy not in stored.values()


@pytest.mark.parametrize(("name", "password", "error"), [
    ("alice", "short", "password too short: use at least 12 characters"),
    ("-alice", PASSWORD, "invalid user name"),
    ("a" * 65, PASSWORD, "invalid user name"),
    ("al ice", PASSWORD, "invalid user name"),
])
def test_refused_users_say_what_to_do(backend: Backend, name: str, password: str, error: str) -> None:
    accounts = backend.open(hasher=RecordingHasher())
    with pytest.raises(RegistryError, match=error):
        accounts.add_user(name, Role.ANALYST, password)
    assert not accounts.has_users()


def test_duplicates_and_unknown_users(backend: Backend) -> None:
    accounts = backend.open(hasher=RecordingHasher())
    accounts.add_user("alice", Role.ANALYST, PASSWORD)
    with pytest.raises(RegistryError, match=r"user .alice. already exists.*user passwd alice"):
        accounts.add_user("alice", Role.ADMIN, PASSWORD)
    for action in (lambda: accounts.set_password("nobody", PASSWORD), lambda: accounts.remove_user("nobody")):
        with pytest.raises(RegistryError, match="no user named 'nobody'; see `honeyatlas user list`"):
            action()
    with pytest.raises(RegistryError, match="password too short"):
        accounts.set_password("alice", "tiny")


def test_a_changed_cost_rehashes_at_the_next_login(backend: Backend) -> None:
    backend.open(hasher=RecordingHasher()).add_user("alice", Role.ANALYST, PASSWORD)
    (old,) = backend.stored("SELECT password_hash FROM users")[0]
    assert "m=8192,t=1,p=1" in old
    stronger = backend.open(hasher=RecordingHasher(time_cost=2))
    assert stronger.verify_password("alice", "wrong password!") is None
    assert backend.stored("SELECT password_hash FROM users")[0][0] == old  # a failed login changes nothing
    assert stronger.verify_password("alice", PASSWORD) is not None
    (new,) = backend.stored("SELECT password_hash FROM users")[0]
    assert "m=8192,t=2,p=1" in new and stronger.verify_password("alice", PASSWORD) is not None


def test_the_default_parameters(backend: Backend) -> None:
    """The shipped cost (the comment in store/accounts.py says what it measured)."""
    accounts = backend.open()
    accounts.add_user("alice", Role.ADMIN, PASSWORD)
    (stored,) = backend.stored("SELECT password_hash FROM users")[0]
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=4$") and not PASSWORD_HASHER.check_needs_rehash(stored)
    assert accounts.verify_password("alice", PASSWORD) is not None


def test_sessions_expire_end_and_are_stored_hashed(backend: Backend) -> None:
    clock = Clock()
    accounts = backend.open(hasher=RecordingHasher(), clock=clock)
    accounts.add_user("alice", Role.ADMIN, PASSWORD)
    accounts.add_user("bob", Role.ANALYST, PASSWORD)
    alice = accounts.verify_password("alice", PASSWORD)
    assert alice is not None
    cookie = accounts.open_session(alice, ttl_seconds=3600)
    assert len(cookie) == 43  # 32 random bytes, urlsafe base64
    assert backend.stored("SELECT id_sha256 FROM sessions") == [(hashlib.sha256(cookie.encode()).digest(),)]
    assert accounts.session(cookie) == alice
    other = backend.open(hasher=RecordingHasher(), clock=clock)  # another process
    assert other.session(cookie) == alice

    clock.advance(3599)
    assert accounts.session(cookie) == alice
    clock.advance(1)
    assert accounts.session(cookie) is None  # expired: gone for good
    assert backend.stored("SELECT count(*) FROM sessions") == [(0,)]
    for forged in ("", "x" * 43, cookie + "x", "../" * 20):
        assert accounts.session(forged) is None

    first, second = accounts.open_session(alice, 3600), accounts.open_session(alice, 3600)
    bob = accounts.open_session(Principal(name="bob", role=Role.ANALYST, via="session"), 3600)
    accounts.close_session(first)  # logout ends that session only
    assert accounts.session(first) is None and accounts.session(second) == alice
    accounts.set_password("alice", PASSWORD + " new")  # ends every session of hers
    assert accounts.session(second) is None and accounts.session(bob) is not None
    assert accounts.verify_password("alice", PASSWORD) is None
    assert accounts.verify_password("alice", PASSWORD + " new") is not None
    accounts.remove_user("bob")
    assert accounts.session(bob) is None and backend.stored("SELECT count(*) FROM sessions") == [(0,)]
    assert accounts.verify_password("bob", PASSWORD) is None


def test_a_session_sees_the_role_of_now(backend: Backend) -> None:
    accounts = backend.open(hasher=RecordingHasher())
    accounts.add_user("alice", Role.ADMIN, PASSWORD)
    principal = accounts.verify_password("alice", PASSWORD)
    assert principal is not None
    cookie = accounts.open_session(principal, 60)
    accounts.remove_user("alice")
    late = accounts.open_session(principal, 60)  # removed between the password check and the session
    accounts.add_user("alice", Role.ANALYST, PASSWORD)  # a new user of the same name
    assert accounts.session(cookie) is None  # removal ended it: the new alice did not inherit it
    assert accounts.session(late) is None


def test_sessions_are_bounded(backend: Backend) -> None:
    clock = Clock()
    accounts = backend.open(hasher=RecordingHasher(), clock=clock)
    accounts.add_user("alice", Role.ANALYST, PASSWORD)
    alice = Principal(name="alice", role=Role.ANALYST, via="session")
    short = accounts.open_session(alice, ttl_seconds=10)
    cookies = []
    for _ in range(MAX_SESSIONS_PER_USER + 5):
        clock.advance(1)
        cookies.append(accounts.open_session(alice, ttl_seconds=3600))
    assert backend.stored("SELECT count(*) FROM sessions") == [(MAX_SESSIONS_PER_USER,)]
    assert accounts.session(short) is None and accounts.session(cookies[4]) is None  # expired, oldest
    assert all(accounts.session(c) == alice for c in cookies[5:])


def test_last_seen_is_written_at_most_once_a_minute(backend: Backend) -> None:
    clock = Clock()
    accounts = backend.open(hasher=RecordingHasher(), clock=clock)
    accounts.add_user("alice", Role.ANALYST, PASSWORD)
    cookie = accounts.open_session(Principal(name="alice", role=Role.ANALYST, via="session"), 3600)
    token = accounts.add_token("siem", Role.ANALYST)

    def seen() -> tuple[datetime, datetime]:
        session = backend.stored("SELECT last_seen FROM sessions")[0][0]
        used = backend.stored("SELECT last_used FROM read_tokens")[0][0]
        return tuple(datetime.fromisoformat(t) if isinstance(t, str) else t for t in (session, used))  # type: ignore[return-value]

    start = clock.now
    assert accounts.authenticate_token(token) is not None
    assert seen() == (start, start)
    clock.advance(59)
    assert accounts.session(cookie) is not None and accounts.authenticate_token(token) is not None
    assert seen() == (start, start)
    clock.advance(1)
    assert accounts.session(cookie) is not None and accounts.authenticate_token(token) is not None
    assert seen() == (clock.now, clock.now)
    assert accounts.tokens()[0].last_used == clock.now


def test_read_tokens(backend: Backend) -> None:
    accounts = backend.open(hasher=RecordingHasher())
    token = accounts.add_token("siem", Role.ANALYST)
    admin_token = accounts.add_token("ops-script", Role.ADMIN)
    assert token.startswith("hat_r_") and len(token.split("_")[2]) == 16
    secret = token.split("_", 3)[3]
    assert backend.stored("SELECT token_sha256 FROM read_tokens WHERE name = 'siem'") == [
        (hashlib.sha256(secret.encode()).digest(),)]
    assert not any(secret in str(row) for row in backend.stored("SELECT * FROM read_tokens"))
    assert accounts.authenticate_token(token) == Principal(name="siem", role=Role.ANALYST, via="token")
    assert accounts.authenticate_token(admin_token) == Principal(name="ops-script", role=Role.ADMIN, via="token")
    other = backend.open(hasher=RecordingHasher())
    assert other.authenticate_token(token) is not None

    forged = [token[:-1] + ("A" if token[-1] != "A" else "B"), "hat_r_0000000000000000_" + secret,
              token.replace("hat_r_", "hat_"), "Bearer " + token, ""]
    assert all(accounts.authenticate_token(t) is None for t in forged)

    with pytest.raises(RegistryError, match="token 'siem' already exists; pick another name or revoke it first"):
        accounts.add_token("siem", Role.ADMIN)
    with pytest.raises(RegistryError, match="invalid token name"):
        accounts.add_token("bad name", Role.ADMIN)
    other.revoke_token("siem")  # by another process: no cache stands in the way
    assert accounts.authenticate_token(token) is None
    accounts.revoke_token("siem")  # again: nothing to do, no error
    with pytest.raises(RegistryError, match="no token named 'nobody'; see `honeyatlas token list`"):
        accounts.revoke_token("nobody")

    renewed = accounts.add_token("siem", Role.ANALYST)  # a revoked name may be given again
    assert accounts.authenticate_token(renewed) is not None and accounts.authenticate_token(token) is None
    listed = [(t.name, t.role, t.revoked_at is not None) for t in accounts.tokens()]
    assert listed == [("ops-script", Role.ADMIN, False), ("siem", Role.ANALYST, True), ("siem", Role.ANALYST, False)]


def test_a_store_that_cannot_record_the_last_use_still_lets_the_reader_in(tmp_path: Path) -> None:
    """A full disk (or read-only files) must not turn every authenticated read into a 500: the
    last-use bookkeeping is skipped and logged. The write is made to fail as SQLite fails on a
    full disk, inside the real store (filling a file system takes a mount; tests/test_faults.py
    does that for the event store)."""
    accounts = SQLiteAccounts(tmp_path / "accounts.sqlite3")
    accounts.open()
    try:
        token = accounts.add_token("siem", Role.ANALYST)
        accounts.add_user("ana", Role.ANALYST, "analyst password 1234")
        cookie = accounts.open_session(Principal(name="ana", role=Role.ANALYST, via="session"), 3600)
        real_change = accounts._change

        def full(*statements: tuple[str, tuple[Any, ...]]) -> list[int]:
            raise sqlite3.OperationalError("database or disk is full")

        accounts._change = full  # type: ignore[method-assign]
        assert accounts.authenticate_token(token) is not None  # first use: a last_used write, failed
        accounts._clock = lambda: datetime.now(UTC) + timedelta(minutes=5)  # type: ignore[method-assign]
        assert accounts.session(cookie) is not None  # a last_seen write, failed
        accounts._change = real_change  # type: ignore[method-assign]
    finally:
        accounts.close()
