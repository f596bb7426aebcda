"""Stop the work of a client that hung up.

A generation can take minutes; when its client disconnects, nobody will read the answer. The
endpoint's work runs beside a watcher of the connection (after the body is read, the next ASGI
message is `http.disconnect`); if the client goes first, the work is cancelled, which cancels the
gRPC call, so the model server drops the job from its queue or stops it at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

log = logging.getLogger("imagemesh.gateway")

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready (nothing is sent)."""


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
    if task.cancelled() or not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("client disconnected: its work was cancelled")
        raise ClientGone
    return task.result()
