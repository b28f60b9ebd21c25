"""Waiting in tests, written once: poll a condition until it holds or a deadline passes.

Tests never sleep for a fixed time to let something happen; they wait for what they expect,
with a generous deadline, and fail with what they were waiting for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(check: Callable[[], object], what: str = "the condition", timeout: float = 15.0,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(check: Callable[[], object], what: str = "the condition", timeout: float = 15.0,
                           interval: float = 0.02) -> None:
    """The same inside an event loop (the loop keeps running while it waits)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
