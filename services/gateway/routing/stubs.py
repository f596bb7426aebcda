"""A router dressed as a generated stub, so the gateway's services call it unchanged:
`backends.qwen_image.Generate(request, timeout=..., metadata=...)` is awaited for an answer, and
`backends.qwen_image.GenerateStream(...)` is iterated and cancelled, as with a plain stub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.gateway.routing.router import Router, StreamHolder


class RoutedStub:
    def __init__(self, router: Router, stub_type: type) -> None:
        self._router = router
        self._stub_type = stub_type
        # Which methods stream, read from a real stub on a replica's channel.
        sample = stub_type(router.replicas.replicas[0].channel)
        self._streaming = {
            name
            for name, value in vars(sample).items()
            if isinstance(value, grpc.aio.UnaryStreamMultiCallable)
        }

    def __getattr__(self, name: str) -> RoutedMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return RoutedMethod(self._router, self._stub_type, name, name in self._streaming)


class RoutedMethod:
    def __init__(self, router: Router, stub_type: type, name: str, streaming: bool) -> None:
        self._router = router
        self._stub_type = stub_type
        self._method = name  # what the gateway's latency metric labels the call with
        self._streaming = streaming

    def __call__(self, request: Any, *, timeout: float, metadata: Any = None) -> Any:
        if self._streaming:
            return RoutedStream(
                self._router, self._stub_type, self._method, request, timeout, metadata
            )
        return self._router.unary(self._stub_type, self._method, request, timeout, metadata)


class RoutedStream:
    def __init__(
        self,
        router: Router,
        stub_type: type,
        name: str,
        request: Any,
        timeout: float,
        metadata: Any,
    ) -> None:
        self._holder = StreamHolder()
        self._messages = router.stream(stub_type, name, request, timeout, metadata, self._holder)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages

    def cancel(self) -> None:
        self._holder.cancel()
