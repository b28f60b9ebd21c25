"""Users, sessions and read tokens (`honeyatlas.access.Accounts`) in SQLite, and the logic both
backends share.

`SQLAccounts` holds every rule once: name and password checks, argon2id hashing (a dummy
hash checked for unknown users, rehash when the parameters change), session and token
formats, expiry, bounds. A backend supplies only a connection: `_rows` (one query) and
`_change` (statements in one transaction), plus how it stores a time. SQL is written with
`?` placeholders in the subset SQLite and PostgreSQL share. `SQLiteAccounts` keeps
`accounts.sqlite3` in the data directory (WAL, owner-only), so the running server and the
`honeyatlas user` and `token` commands use it at once; store/postgres_accounts.py is the
same over PostgreSQL for the roles.

Secrets: passwords are stored as argon2id hashes; session ids (32 random bytes) and read
tokens (`hat_r_<16 hex id>_<secret>`, 32 random bytes) only as SHA-256 digests, compared in
constant time: they carry 256 bits, so a fast hash loses nothing. A session lasts its ttl
from login (not sliding); logout, a password change and removing the user end it at once;
expired sessions are deleted whenever one opens, and a user keeps at most
`MAX_SESSIONS_PER_USER` (the oldest go first). `last_seen` and a token's `last_used` are
written at most once a minute, so reading does not mean a write per request.

What must not live here: audiences and who may read what (honeyatlas.access), cookies and
login rate limits (web).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from honeyatlas.access import Accounts, Principal, Role, TokenInfo, UserInfo
from honeyatlas.errors import RegistryError
from honeyatlas.store.sqlite import connect_shared

ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as sensor names
READ_TOKEN = re.compile(r"^hat_r_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # argon2 takes any length; a megabyte "password" is only a way to burn CPU
log = logging.getLogger(__name__)
MAX_SESSIONS_PER_USER = 32
TOUCH_INTERVAL = timedelta(seconds=60)  # last_seen / last_used written at most this often

# argon2id, RFC 9106's low-memory profile (64 MiB, 4 lanes) with 2 passes instead of 3.
# Measured on the project's 2-core machine (argon2-cffi 25.1, best of 5 verifications):
# t=3 130 ms, t=2 91 ms, t=1 53 ms. t=2 keeps a login near 90 ms: dear for a guesser,
# cheap for a person. Hashes made with other parameters are rehashed at the next login.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=65536, parallelism=4, hash_len=32, salt_len=16)


def generate_password() -> str:
    """A password for a user who did not choose one (24 characters, 144 bits)."""
    return secrets.token_urlsafe(18)


def check_account_name(kind: str, name: str) -> None:
    if not ACCOUNT_NAME.match(name):
        raise RegistryError(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise RegistryError(f"password too short: use at least {MIN_PASSWORD_CHARS} characters, "
                            "or leave out --password-stdin to have one generated")
    if len(password) > MAX_PASSWORD_CHARS:
        raise RegistryError(f"password too long: use at most {MAX_PASSWORD_CHARS} characters")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class DuplicateName(Exception):
    """A backend's unique-constraint violation, raised by `_change`."""


class SQLAccounts(abc.ABC):
    """The `Accounts` rules over a backend's two primitives. Thread-safe: the backends
    serialise their one connection behind a lock."""

    def __init__(self, *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._hasher = hasher or PASSWORD_HASHER
        self._clock = clock
        self._dummy_hash: str | None = None

    # -- what a backend supplies --------------------------------------------------------

    @abc.abstractmethod
    def open(self) -> None:
        """Connect, and create the tables when missing."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query."""

    @abc.abstractmethod
    def _change(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        """Run the statements in one transaction; their row counts. Raises `DuplicateName`
        on a unique-constraint violation (nothing is changed then)."""

    def _time_in(self, moment: datetime) -> Any:
        """A time as the backend stores it (PostgreSQL: as it is, timestamptz)."""
        return moment

    def _time_out(self, stored: Any) -> datetime | None:
        return stored

    # -- users ----------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str) -> None:
        check_account_name("user", name)
        check_password(password)
        hashed = self._hasher.hash(password)
        try:
            self._change(("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                          (name, Role(role).value, hashed, self._time_in(self._clock()))))
        except DuplicateName:
            raise RegistryError(f"user {name!r} already exists; pick another name, "
                                f"or `honeyatlas user passwd {name}` to set a new password") from None

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        hashed = self._hasher.hash(password)
        changed, _ = self._change(("UPDATE users SET password_hash = ? WHERE name = ?", (hashed, name)),
                                  ("DELETE FROM sessions WHERE user_name = ?", (name,)))
        if not changed:
            raise self._unknown_user(name)

    def remove_user(self, name: str) -> None:
        _, removed = self._change(("DELETE FROM sessions WHERE user_name = ?", (name,)),
                                  ("DELETE FROM users WHERE name = ?", (name,)))
        if not removed:
            raise self._unknown_user(name)

    @staticmethod
    def _unknown_user(name: str) -> RegistryError:
        return RegistryError(f"no user named {name!r}; see `honeyatlas user list`")

    def users(self) -> list[UserInfo]:
        rows = self._rows("SELECT name, role, created_at, last_login FROM users ORDER BY name")
        return [UserInfo(name=n, role=Role(r), created_at=self._time_out(c),  # type: ignore[arg-type]
                         last_login=self._time_out(last)) for n, r, c, last in rows]

    def has_users(self) -> bool:
        return bool(self._rows("SELECT 1 FROM users LIMIT 1"))

    def verify_password(self, name: str, password: str) -> Principal | None:
        rows = self._rows("SELECT role, password_hash FROM users WHERE name = ?", (name,))
        if not rows or len(password) > MAX_PASSWORD_CHARS:
            self._verify(self._dummy(), password[:MAX_PASSWORD_CHARS])  # as long as a real check
            return None
        role, stored = rows[0]
        if not self._verify(stored, password):
            return None
        now = self._time_in(self._clock())
        if self._hasher.check_needs_rehash(stored):
            self._change(("UPDATE users SET password_hash = ?, last_login = ? WHERE name = ? AND password_hash = ?",
                          (self._hasher.hash(password), now, name, stored)))
        else:
            self._change(("UPDATE users SET last_login = ? WHERE name = ?", (now, name)))
        return Principal(name=name, role=Role(role), via="session")

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        """A hash of nothing anyone knows, made with the current parameters (so checking it
        costs what checking a real user's does)."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(18))
        return self._dummy_hash

    # -- sessions -------------------------------------------------------------------------

    def open_session(self, principal: Principal, ttl_seconds: float) -> str:
        """The session is tied to the user as they are now: one removed since their password
        was checked gets a cookie that opens nothing."""
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        at = self._time_in(now)
        self._change(
            ("DELETE FROM sessions WHERE expires_at <= ?", (at,)),
            ("INSERT INTO sessions (id_sha256, user_name, created_at, expires_at, last_seen) "
             "SELECT ?, name, ?, ?, ? FROM users WHERE name = ?",
             (_digest(cookie), at, self._time_in(now + timedelta(seconds=ttl_seconds)), at, principal.name)),
            ("DELETE FROM sessions WHERE user_name = ? AND id_sha256 NOT IN "
             "(SELECT id_sha256 FROM sessions WHERE user_name = ? ORDER BY created_at DESC LIMIT ?)",
             (principal.name, principal.name, MAX_SESSIONS_PER_USER)),
        )
        return cookie

    def session(self, cookie: str) -> Principal | None:
        if not SESSION_ID.match(cookie):
            return None
        key = _digest(cookie)
        rows = self._rows("SELECT u.name, u.role, s.expires_at, s.last_seen FROM sessions s "
                          "JOIN users u ON u.name = s.user_name WHERE s.id_sha256 = ?", (key,))
        if not rows:
            return None
        name, role, expires_at, last_seen = rows[0]
        now = self._clock()
        if self._time_out(expires_at) <= now:  # type: ignore[operator]
            self._touch("DELETE FROM sessions WHERE id_sha256 = ?", (key,))
            return None
        if now - self._time_out(last_seen) >= TOUCH_INTERVAL:  # type: ignore[operator]
            self._touch("UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?", (self._time_in(now), key))
        return Principal(name=name, role=Role(role), via="session")

    def close_session(self, cookie: str) -> None:
        if SESSION_ID.match(cookie):
            self._change(("DELETE FROM sessions WHERE id_sha256 = ?", (_digest(cookie),)))

    # -- read tokens ------------------------------------------------------------------------

    def add_token(self, name: str, role: Role) -> str:
        check_account_name("token", name)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        try:
            self._change(("INSERT INTO read_tokens (token_id, name, role, token_sha256, created_at) "
                          "VALUES (?, ?, ?, ?, ?)",
                          (token_id, name, Role(role).value, _digest(secret), self._time_in(self._clock()))))
        except DuplicateName:
            raise RegistryError(f"token {name!r} already exists; pick another name or revoke it first") from None
        return f"hat_r_{token_id}_{secret}"

    def revoke_token(self, name: str) -> None:
        (revoked,) = self._change(("UPDATE read_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                   (self._time_in(self._clock()), name)))
        if not revoked and not self._rows("SELECT 1 FROM read_tokens WHERE name = ?", (name,)):
            raise RegistryError(f"no token named {name!r}; see `honeyatlas token list`")

    def tokens(self) -> list[TokenInfo]:
        rows = self._rows("SELECT name, role, created_at, last_used, revoked_at FROM read_tokens "
                          "ORDER BY name, created_at")
        return [TokenInfo(name=n, role=Role(r), created_at=self._time_out(c),  # type: ignore[arg-type]
                          last_used=self._time_out(u), revoked_at=self._time_out(v)) for n, r, c, u, v in rows]

    def authenticate_token(self, token: str) -> Principal | None:
        match = READ_TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        rows = self._rows("SELECT name, role, token_sha256, last_used, revoked_at FROM read_tokens "
                          "WHERE token_id = ?", (token_id,))
        if not rows:
            hmac.compare_digest(_digest(secret), bytes(32))  # same work whether or not the id exists
            return None
        name, role, stored, last_used, revoked_at = rows[0]
        if not hmac.compare_digest(_digest(secret), bytes(stored)) or revoked_at is not None:
            return None
        now = self._clock()
        used = self._time_out(last_used)
        if used is None or now - used >= TOUCH_INTERVAL:
            self._touch("UPDATE read_tokens SET last_used = ? WHERE token_id = ?", (self._time_in(now), token_id))
        return Principal(name=name, role=Role(role), via="token")

    def _touch(self, sql: str, params: tuple[Any, ...]) -> None:
        """Record a last use: bookkeeping, so a store that cannot be written (a full disk,
        read-only files) must not refuse the reader; it is logged and skipped."""
        try:
            self._change((sql, params))
        except Exception as exc:  # sqlite3 and psycopg errors alike
            log.warning("accounts: last use not recorded (%s); the request goes on", exc)


_SQLITE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, "
    "created_at TEXT NOT NULL, last_login TEXT)",
    "CREATE TABLE IF NOT EXISTS sessions (id_sha256 BLOB PRIMARY KEY, user_name TEXT NOT NULL, "
    "created_at TEXT NOT NULL, expires_at TEXT NOT NULL, last_seen TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_name)",
    "CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at)",
    # A revoked token keeps its row (listed as revoked); its name may be given to a new one.
    "CREATE TABLE IF NOT EXISTS read_tokens (token_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, "
    "token_sha256 BLOB NOT NULL, created_at TEXT NOT NULL, last_used TEXT, revoked_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS read_tokens_active_name ON read_tokens (name) WHERE revoked_at IS NULL",
]


class SQLiteAccounts(SQLAccounts):
    """`accounts.sqlite3` in the data directory: WAL mode, so the server and the commands
    share it; times stored as UTC ISO-8601 text with microseconds (so they sort as text)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._path = path
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        con = connect_shared(self._path)
        for statement in _SQLITE_SCHEMA:
            con.execute(statement)
        self._con = con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise RegistryError("accounts database is not open")
        return self._con

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def _change(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        with self._lock:
            con = self._db()
            con.execute("BEGIN IMMEDIATE")
            try:
                counts = [con.execute(sql, params).rowcount for sql, params in statements]
            except sqlite3.IntegrityError:
                con.execute("ROLLBACK")
                raise DuplicateName from None
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return counts

    def _time_in(self, moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    def _time_out(self, stored: Any) -> datetime | None:
        return datetime.fromisoformat(stored) if stored else None


def login_hint(accounts: Accounts, state_options: str = "") -> str | None:
    """What `serve` prints at start-up when nobody can log in yet (None once a user exists).
    `state_options` are the --data-dir/--config the server was started with, repeated so the
    command works as printed."""
    if accounts.has_users():
        return None
    options = f" {state_options}" if state_options else ""
    return (f"no user can log in yet: create an admin with `honeyatlas user ensure-admin{options}` "
            f"(prints its password once) or `honeyatlas user add NAME --role admin{options}`")
