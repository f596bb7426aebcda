"""ASGI middleware at the edge, outermost first:

- `RequestContext`: the request id (the client's `X-Request-ID` when sane, else a new one) in a
  contextvar for every log line and gRPC call, echoed in the `X-Request-ID` header; one access log
  line and Prometheus metrics per request.
- `ApiKeys`: when keys are configured, `Authorization: Bearer <key>` is required (401 otherwise)
  on every path but the open ones (`/healthz` by default: the liveness and readiness probes of
  deploy/; `/readyz` names the backends and `/docs` the API, so they need a key unless an operator
  opens them). Keys are compared in constant time and never logged.
- `BodyLimit`: 413 when `Content-Length` is over the cap, before anything is read, and while
  reading when the body turns out larger than announced (chunked uploads).

Pure ASGI (not BaseHTTPMiddleware), so the contextvar reaches the endpoint and streamed bodies
are not buffered.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import requestid, tracing
from services.gateway.errors import ApiError, error_response

log = logging.getLogger("imagemesh.gateway.http")

REQUESTS = Counter(
    "imagemesh_http_requests", "HTTP requests answered, by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "imagemesh_http_request_seconds",
    "Time to answer an HTTP request, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
IN_FLIGHT = Gauge("imagemesh_http_in_flight", "HTTP requests being answered")

_SANE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_QUIET = ("/healthz", "/readyz", "/metrics")
OPEN_PATHS = ("/healthz",)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _SANE_ID.match(given) else requestid.new_request_id()
        token = requestid.set_request_id(rid)
        tracing.set_request_id(rid)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # answered here, while the request id is still set
            # Starlette's own last-resort handler runs outside this middleware, after the id
            # is gone; this one answers the envelope with the id and logs the traceback.
            log.exception("unhandled error")
            if not started:
                rid_message = f"internal error; request id {rid}"
                await error_response(ApiError(500, rid_message))(scope, receive, send_with_id)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUESTS.labels(route, str(status)).inc()
            LATENCY.labels(route).observe(elapsed)
            path = scope.get("path", "")
            if not path.startswith(_QUIET) or status >= 400:
                log.info("%s %s %d %.1f ms", scope.get("method"), path, status, elapsed * 1000)
            requestid.reset_request_id(token)


class ApiKeys:
    def __init__(
        self, app: ASGIApp, keys: Iterable[str], open_paths: Iterable[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self._keys = [key.encode() for key in keys if key]
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._keys or scope.get("path") in self._open:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS":
            # CORS preflights carry no credentials; the CORS middleware answers them.
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            await self._refuse(
                scope, receive, send, "missing API key: send Authorization: Bearer <key>"
            )
            return
        candidate = given.strip().encode()
        # Compare with every key, so the time taken does not say which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            await self._refuse(scope, receive, send, "invalid API key")
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        err = ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})
        await error_response(err)(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> ApiError:
        mib = self.max_bytes / (1024 * 1024)
        return ApiError(
            413,
            f"the request body is larger than the {mib:.0f} MiB limit; send smaller or fewer "
            "images, or give images by URL",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._error())(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: Any = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the endpoint's read: the exception handlers answer the 413.
                    raise self._error()
            return message

        await self.app(scope, counted, send)
