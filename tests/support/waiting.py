"""Bounded waits: every wait in a test has a deadline and, past it, fails saying what it waited
for (and what it last saw, where the predicate tells). The timeouts are ceilings for slow
machines, never speed checks: a test asserts on what happened, not on how long it took.

`wait_until` polls a plain predicate from synchronous code; `eventually` does the same inside an
event loop, for a predicate that is plain or returns an awaitable (a coroutine, a to_thread call).
Both return the predicate's first truthy value, so a wait can hand back what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Often enough for a test to go on soon after the condition holds, rarely enough not to spin.
POLL_SECONDS = 0.02


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.05) -> T:
    """Polls `predicate` until it returns something truthy; TimeoutError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(poll)


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    what: str,
    poll: float = POLL_SECONDS,
) -> T:
    """`wait_until` for async tests: the predicate may return an awaitable, which is awaited; the
    loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        await asyncio.sleep(poll)
