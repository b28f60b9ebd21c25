"""Background task helpers shared by every component: stop a task, run something periodically.

Imports nothing of ours, holds no state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel `task` and wait until it has finished (its own clean-up included); None is a no-op.
    An exception the task ended with is logged, not raised: stopping must go on."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception:
            log.exception("task %s failed while stopping", task.get_name())


def every(seconds: float, work: Callable[[], Awaitable[None]], *, name: str,
          on_error: Callable[[Exception], None] | None = None) -> asyncio.Task[None]:
    """Start a task that awaits `work()` every `seconds` until cancelled; a failing round is
    reported to `on_error` (or logged) and the next round runs as usual."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception as exc:
                if on_error is None:
                    log.warning("%s failed: %s", name, exc)
                else:
                    on_error(exc)

    return asyncio.create_task(loop(), name=name)
