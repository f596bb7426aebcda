"""Polling an asynchronous provider task until it ends, with backoff, within the deadline.

The first poll waits `poll_initial_seconds`, each next wait doubles up to `poll_max_seconds`.
Without a caller deadline the task is given up after `task_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.errors import DeadlineExceeded
from services.providers import deadline
from services.providers.settings import ProvidersSettings

T = TypeVar("T")


async def poll_until(
    check: Callable[[], Awaitable[T | None]], settings: ProvidersSettings, what: str
) -> T:
    """Calls `check` until it returns something other than None, and returns that."""
    interval = settings.poll_initial_seconds
    with deadline.deadline_in(settings.task_timeout_seconds):
        while True:
            left = deadline.remaining()
            if left is not None and left <= 0.05:
                raise DeadlineExceeded(f"{what} was still running when the deadline passed")
            await asyncio.sleep(min(interval, max(0.0, (left or interval) - 0.05)))
            result = await check()
            if result is not None:
                return result
            interval = min(interval * 2, settings.poll_max_seconds)
