"""Who may read what: audiences, principals, and the accounts directory they come from.

Every route declares one audience (`Audience`); a request is answered only when its
principal belongs to it:

    open      anyone, always: the page shell, its static assets, health, login, session
    public    anyone when the public view is on (redacted on the server); analysts and admins
    analyst   a logged-in user or a read token (role analyst or admin)
    admin     a user or token with the admin role
    ingest    a sensor token (the ingest route checks it itself, as before)

Users log in with a password (argon2id) and get a session (a random cookie value, stored
hashed); scripts and SIEMs use read tokens (`hat_r_<id>_<secret>`, stored hashed like
sensor tokens). The `Accounts` protocol is the seam: SQLite next to the sensor registry
for one process, PostgreSQL for the roles. No I/O here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol

import msgspec


class Audience(enum.StrEnum):
    OPEN = "open"
    PUBLIC = "public"
    ANALYST = "analyst"
    ADMIN = "admin"
    INGEST = "ingest"


class Role(enum.StrEnum):
    ANALYST = "analyst"
    ADMIN = "admin"


class Principal(msgspec.Struct, frozen=True):
    """Who a request comes from, once authenticated."""

    name: str  # user or token name, as shown in the access log
    role: Role
    via: str  # "session" or "token"


class UserInfo(msgspec.Struct, frozen=True):
    name: str
    role: Role
    created_at: datetime
    last_login: datetime | None = None


class TokenInfo(msgspec.Struct, frozen=True):
    name: str
    role: Role
    created_at: datetime
    last_used: datetime | None = None
    revoked_at: datetime | None = None


class Accounts(Protocol):
    """Users, their sessions and read tokens. Secrets are stored only as hashes (argon2id
    for passwords, SHA-256 for random session ids and tokens, which carry 256 bits and so
    need no slow hash). Errors the operator must act on raise `RegistryError` with one line
    that says what to do. Methods are blocking (SQLite or psycopg): the web layer calls the
    ones on its request path through a short cache or a worker thread."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add_user(self, name: str, role: Role, password: str) -> None: ...

    def set_password(self, name: str, password: str) -> None:
        """Also ends every session of that user."""

    def remove_user(self, name: str) -> None:
        """Also ends every session of that user."""

    def users(self) -> list[UserInfo]: ...

    def has_users(self) -> bool: ...

    def verify_password(self, name: str, password: str) -> Principal | None:
        """The user's principal when `password` is theirs; None otherwise, in about the same
        time whether or not the user exists (a dummy hash is checked for unknown names)."""

    def open_session(self, principal: Principal, ttl_seconds: float) -> str:
        """A new session for a verified user; returns the cookie value (shown once)."""

    def session(self, cookie: str) -> Principal | None:
        """The principal of a live session; None when unknown, expired, or its user is gone."""

    def close_session(self, cookie: str) -> None: ...

    def add_token(self, name: str, role: Role) -> str:
        """A new read token; returns it (shown once)."""

    def revoke_token(self, name: str) -> None: ...

    def tokens(self) -> list[TokenInfo]: ...

    def authenticate_token(self, token: str) -> Principal | None: ...


def allowed(audience: Audience, principal: Principal | None, *, public_view: bool) -> bool:
    """Whether a request from `principal` (None: anonymous) may use a route of `audience`.
    `ingest` routes authenticate sensors themselves and are let through here."""
    if audience in (Audience.OPEN, Audience.INGEST):
        return True
    if audience is Audience.PUBLIC:
        return public_view or principal is not None
    if principal is None:
        return False
    if audience is Audience.ANALYST:
        return principal.role in (Role.ANALYST, Role.ADMIN)
    return principal.role is Role.ADMIN
