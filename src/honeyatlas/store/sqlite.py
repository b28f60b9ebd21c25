"""The small SQLite files beside the event store (the sensor registry, the accounts).

Both are shared by the running server and the `honeyatlas sensor|user|token` commands, and both
hold secrets (hpfeeds secrets in clear, password hashes), so they open the same way: created
owner-only whatever the umask, WAL mode, and a busy timeout for the moments the other process
writes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect_shared(path: Path) -> sqlite3.Connection:
    """An autocommit connection to the WAL-mode file at `path`, created 0600 in a 0700
    directory if missing; usable from any thread (callers hold their own lock)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    con = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return con
