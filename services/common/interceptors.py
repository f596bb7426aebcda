"""The server interceptor every service installs.

For each call it: reads or creates the request id (and sends it back in the initial metadata),
records Prometheus metrics, logs the call's end, and turns a `ServiceError` into an abort with its
status code. Any other exception is logged with its traceback and answered INTERNAL with the
request id only, so no traceback reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from services.common import metrics, requestid
from services.common.errors import ServiceError

log = logging.getLogger("imagemesh.rpc")

# Health checks and reflection are called every few seconds by probes: keep them out of the logs.
_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


class _CallScope:
    """What the interceptor does around one call, whatever its streaming shape."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.code = grpc.StatusCode.OK
        self.quiet = method.startswith(_QUIET_PREFIXES)

    async def __aenter__(self) -> _CallScope:
        self.token = requestid.set_request_id(
            requestid.from_metadata(self.context.invocation_metadata())
        )
        self.start = time.perf_counter()
        metrics.IN_FLIGHT.labels(self.method).inc()
        # The client may already be gone; the call itself will say so.
        with contextlib.suppress(Exception):
            await self.context.send_initial_metadata(requestid.outgoing_metadata())
        return self

    async def fail(self, exc: BaseException) -> None:
        """Abort the call with the status the exception carries."""
        if isinstance(exc, ServiceError):
            self.code = exc.code
            await self.context.abort(exc.code, exc.message)
        self.code = grpc.StatusCode.INTERNAL
        log.exception("%s failed", self.method)
        await self.context.abort(
            grpc.StatusCode.INTERNAL,
            f"internal error; request id {requestid.get_request_id()}",
        )

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        elapsed = time.perf_counter() - self.start
        code = self.context.code() if exc is None else None
        if isinstance(code, grpc.StatusCode):
            self.code = code
        elif exc is not None and not isinstance(exc, ServiceError | grpc.aio.AbortError):
            self.code = grpc.StatusCode.CANCELLED if _is_cancel(exc) else self.code
        metrics.IN_FLIGHT.labels(self.method).dec()
        metrics.REQUESTS.labels(self.method, self.code.name).inc()
        metrics.LATENCY.labels(self.method).observe(elapsed)
        if not self.quiet:
            log.info("%s %s %.1f ms", self.method, self.code.name, elapsed * 1000)
        requestid.reset_request_id(self.token)


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


def _wrap_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _CallScope(method, context) as scope:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
                await scope.fail(exc)

    return wrapper


def _wrap_stream(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        # A servicer that writes with context.write() and returns: treat it like a unary call.
        return _wrap_unary(method, behavior)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _CallScope(method, context) as scope:
            try:
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await scope.fail(exc)

    return wrapper


class ServerInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(method, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        assert handler.stream_stream is not None  # one of the four is always set
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(method, handler.stream_stream),
            handler.request_deserializer,
            handler.response_serializer,
        )
