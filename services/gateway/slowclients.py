"""Limits against slow clients at the gateway's HTTP server: a client that sends a byte now and
then must not keep a connection (and the work behind it) for as long as it likes.

- The request head (request line and headers) must arrive within `GATEWAY_HEADER_TIMEOUT_SECONDS`
  of the connection opening or the request starting: `protocol(...)` is uvicorn's httptools
  protocol with that timer; past it the server answers 408 and closes the connection. uvicorn
  itself has no such timer (its keep-alive timer runs only between requests).
- The body: `BodyTimeout` (ASGI middleware) gives every read of the body at most
  `GATEWAY_BODY_IDLE_SECONDS` to bring the next chunk and the whole body
  `GATEWAY_BODY_TIMEOUT_SECONDS`; past either, the read raises a 408 (the envelope, with
  `Connection: close`). Reads after the whole body (the disconnect watcher's) wait freely.

The number of connections and requests at once is uvicorn's `limit_concurrency`
(`GATEWAY_LIMIT_CONCURRENCY`; past it uvicorn answers 503), which these timers keep from being
filled by clients that never finish a request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.errors import ApiError

CLOSE = {"Connection": "close"}


def _head_timeout_answer(seconds: float) -> bytes:
    message = (
        f"the request line and headers did not arrive within {seconds:g} s; "
        "send the whole request head at once"
    )
    body = json.dumps(
        {
            "code": 408,
            "message": message,
            "request_id": "",
            "error": {"message": message, "type": "invalid_request_error", "param": None},
        }
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a timer on each request head."""

    head_timeout_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_head_timeout_answer(self.head_timeout_seconds))
            self.transport.close()


def protocol(head_timeout_seconds: float) -> type[HeadTimeoutProtocol]:
    """The protocol class for `uvicorn.run(http=...)`, with this head timeout."""
    return type(
        "GatewayHttpProtocol",
        (HeadTimeoutProtocol,),
        {"head_timeout_seconds": head_timeout_seconds},
    )


class BodyTimeout:
    def __init__(self, app: ASGIApp, idle_seconds: float, total_seconds: float) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_seconds
        whole = False

        async def timed() -> Message:
            nonlocal whole
            if whole:
                return await receive()
            left = deadline - loop.time()
            wait = min(self.idle_seconds, left)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except TimeoutError:
                raise self._error(left <= self.idle_seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                whole = True
            return message

        await self.app(scope, timed, send)

    def _error(self, total: bool) -> ApiError:
        if total:
            said = f"the request body did not arrive within {self.total_seconds:g} s"
        else:
            said = f"the request body stalled: no data for {self.idle_seconds:g} s"
        return ApiError(408, f"{said}; send it without pauses", headers=CLOSE)
