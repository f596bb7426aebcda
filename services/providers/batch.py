"""Running several upstream calls at once, all-or-nothing, at most `limit` at a time.

A batch edit or a multi-image result is one answer to the caller: if one part fails, the others
are cancelled and the first error is raised as is (not wrapped in an ExceptionGroup).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def run_all(calls: Iterable[Awaitable[T]], limit: int = 4) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def gated(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(call)) for call in calls]
    except BaseExceptionGroup as errors:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]
