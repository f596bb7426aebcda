"""What every fake provider has: a uvicorn server in a thread, injected failures (an error status,
a reset connection, a 200 whose body is broken JSON), a delay, and a record of the requests it
received."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.support.waiting import wait_until

# A 200 whose body a JSON parser gives up on halfway: what a proxy cutting an answer short sends.
GARBAGE = b'{"id": "cut-short", "choices": [{"index": 0, "message": {"content": "A red'


@dataclass
class Failure:
    status: int
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    path: str = ""  # only requests whose path contains this ("" = any)
    kind: str = "status"  # "status" (an error answer), "reset" (RST, no answer), "garbage"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any = None  # parsed JSON, or a dict of form fields (files as (filename, type, bytes))
    files: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)


class FakeProvider:
    """Base class: subclasses build `self.app` (Starlette) and render errors in their shape."""

    def __init__(self) -> None:
        self.app: Starlette
        self.host = "127.0.0.1"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.reset()

    # -- toggles -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a healthy provider: no failures queued, no delay, nothing recorded."""
        with getattr(self, "_lock", threading.Lock()):
            self.failures: deque[Failure] = deque()
            self.requests: list[Received] = []
            self.delay_seconds = 0.0
            self.delay_path = ""

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        code: str = "",
        message: str = "",
        retry_after: float | None = None,
        path: str = "",
    ) -> None:
        """The next `times` requests (to `path`, when given) answer `status` in the real error
        shape of this provider."""
        with self._lock:
            for _ in range(times):
                self.failures.append(Failure(status, code, message, retry_after, path))

    def reset_next(self, times: int = 1, *, path: str = "") -> None:
        """The next `times` requests (to `path`, when given) get their connection reset (a TCP
        RST) instead of an answer."""
        with self._lock:
            for _ in range(times):
                self.failures.append(Failure(0, path=path, kind="reset"))

    def garbage_next(self, times: int = 1, *, path: str = "") -> None:
        """The next `times` requests (to `path`, when given) answer 200 with a JSON body cut off
        in the middle."""
        with self._lock:
            for _ in range(times):
                self.failures.append(Failure(200, path=path, kind="garbage"))

    def delay(self, seconds: float, path: str = "") -> None:
        """Answer requests (to `path`, when given) only after `seconds`: a slow provider."""
        self.delay_seconds, self.delay_path = seconds, path

    def received(self, path: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path in r.path]

    # -- request plumbing for subclasses -------------------------------------------------------

    async def record(self, request: Request) -> Received:
        body: Any = None
        files: dict[str, list[tuple[str, str, bytes]]] = {}
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            body = {}
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    data = await value.read()
                    files.setdefault(key, []).append(
                        (value.filename or "", value.content_type or "", data)
                    )
                else:
                    body[key] = value
        else:
            raw = await request.body()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
        received = Received(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            body,
            files,
        )
        with self._lock:
            self.requests.append(received)
        return received

    def _take(self, path: str, kinds: tuple[str, ...]) -> Failure | None:
        with self._lock:
            failure = next((f for f in self.failures if f.path in path), None)
            if failure is None or failure.kind not in kinds:
                return None
            self.failures.remove(failure)
            return failure

    async def injected(self, path: str) -> Response | None:
        """Waits the configured delay, then answers the next queued failure for `path`."""
        if self.delay_seconds and self.delay_path in path:
            await asyncio.sleep(self.delay_seconds)
        failure = self._take(path, ("status", "garbage"))
        if failure is None:
            return None
        if failure.kind == "garbage":
            return Response(GARBAGE, 200, media_type="application/json")
        response = self.error(failure.status, failure.code, failure.message, path)
        if failure.retry_after is not None:
            response.headers["retry-after"] = f"{failure.retry_after:g}"
        return response

    def error(self, status: int, code: str, message: str, path: str) -> Response:
        raise NotImplementedError

    # -- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the connection resets: those happen before any route sees the request."""
        if scope["type"] == "http" and self._take(scope["path"], ("reset",)):
            self._reset(scope.get("client"))
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await self.app(scope, receive, send)

    def _reset(self, client: tuple[str, int] | None) -> None:
        """Closes the connection from `client` with an RST (SO_LINGER 0), as a crashed peer would."""
        assert self._server is not None
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is None or tuple(getattr(connection, "client", ()) or ()) != client:
                continue
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()

    def start(self) -> FakeProvider:
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            host=self.host,
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=type(self).__name__)
        self._thread.daemon = True
        self._thread.start()
        server, thread = self._server, self._thread

        def started() -> bool:
            if not thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} exited while starting")
            return bool(server.started)

        wait_until(started, 20, type(self).__name__)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
