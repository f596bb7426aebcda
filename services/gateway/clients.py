"""The gateway's gRPC clients: one long-lived channel per backend, a deadline on every call.

Every call carries the request id in its metadata and turns a gRPC error into the HTTP envelope
(`errors.from_rpc_error`), naming the model or service the client asked for. Channels reconnect on
their own (fast backoff, `services.common.channels`), so a backend that restarts is used again
without restarting the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagemesh.v1 import (
    common_pb2,
    common_pb2_grpc,
    providers_pb2,
    providers_pb2_grpc,
    qwen_edit_pb2_grpc,
    qwen_image_pb2_grpc,
    storage_pb2_grpc,
    tasks_pb2_grpc,
)
from prometheus_client import Histogram

from services.common import requestid
from services.common.channels import insecure_channel
from services.gateway.errors import from_rpc_error
from services.gateway.settings import LOCAL_BACKENDS, GatewaySettings

log = logging.getLogger("imagemesh.gateway.clients")

BACKEND_LATENCY = Histogram(
    "imagemesh_gateway_backend_seconds",
    "Time of the gateway's gRPC calls, by backend, method and status code",
    ["backend", "method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

SERVING = health_pb2.HealthCheckResponse.SERVING


class Backends:
    """Channels and stubs of every backend; built inside the running event loop."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.channels: dict[str, grpc.aio.Channel] = {
            name: insecure_channel(settings.target(name), settings.max_message_bytes)
            for name in LOCAL_BACKENDS
        }
        self.qwen_image = qwen_image_pb2_grpc.ImageGenerationStub(self.channels["qwen_image"])
        self.qwen_edit = qwen_edit_pb2_grpc.ImageEditingStub(self.channels["qwen_edit"])
        self.providers = providers_pb2_grpc.ProvidersStub(self.channels["providers"])
        self.storage = storage_pb2_grpc.StorageStub(self.channels["storage"])
        self.tasks = tasks_pb2_grpc.TasksStub(self.channels["tasks"])
        self._health = {
            name: health_pb2_grpc.HealthStub(channel) for name, channel in self.channels.items()
        }
        self._model_servers = {
            name: common_pb2_grpc.ModelServerStub(self.channels[name])
            for name in ("qwen_image", "qwen_edit")
        }

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def unary(
        self,
        backend: str,
        method: Callable[..., Any],
        request: Any,
        *,
        deadline: float,
        what: str,
        param: str | None = None,
    ) -> Any:
        """`await method(request)` with a deadline and the request id; errors become ApiError."""
        start = time.perf_counter()
        code = "OK"
        try:
            return await method(request, timeout=deadline, metadata=requestid.outgoing_metadata())
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            raise from_rpc_error(exc, what, self.settings.retry_after_seconds, param) from None
        finally:
            name = getattr(method, "_method", b"")
            label = name.decode().rsplit("/", 1)[-1] if isinstance(name, bytes) else str(name)
            BACKEND_LATENCY.labels(backend, label, code).observe(time.perf_counter() - start)

    async def stream(
        self,
        backend: str,
        method: Callable[..., Any],
        request: Any,
        *,
        deadline: float,
        what: str,
    ) -> AsyncIterator[Any]:
        """Server-streaming call; the first error (before or during the stream) is an ApiError."""
        call = method(request, timeout=deadline, metadata=requestid.outgoing_metadata())
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, what, self.settings.retry_after_seconds) from None
        finally:
            call.cancel()

    async def health(self, backend: str) -> str:
        """SERVING, NOT_SERVING, UNKNOWN, ... or UNREACHABLE (no answer within the deadline)."""
        try:
            response = await self._health[backend].Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=self.settings.health_deadline_seconds,
                metadata=requestid.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "NO_HEALTH_SERVICE"
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def healths(self, backends: Sequence[str]) -> dict[str, str]:
        results = await asyncio.gather(*(self.health(name) for name in backends))
        return dict(zip(backends, results, strict=True))

    async def describe(self, backend: str) -> dict[str, str] | None:
        """A model server's acceleration switches (`cache`, `compile`, ...), or None when it does
        not answer (or is not a model server)."""
        stub = self._model_servers.get(backend)
        if stub is None:
            return None
        try:
            info = await stub.Describe(
                common_pb2.DescribeModelServerRequest(),
                timeout=self.settings.health_deadline_seconds,
                metadata=requestid.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError:
            return None
        described = {"cache": info.cache, "compile": info.compile, "quantize": info.quantize}
        if info.cache_config:
            described["cache_config"] = info.cache_config
        return described

    async def describes(self, backends: Sequence[str]) -> dict[str, dict[str, str] | None]:
        results = await asyncio.gather(*(self.describe(name) for name in backends))
        return dict(zip(backends, results, strict=True))

    async def provider_models(self) -> dict[str, providers_pb2.ProviderModel]:
        """What the providers service says of its models; empty when it is not answering."""
        try:
            response = await self.providers.ListModels(
                providers_pb2.ListModelsRequest(),
                timeout=self.settings.health_deadline_seconds * 2,
                metadata=requestid.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            log.info("providers ListModels: %s", exc.code().name)
            return {}
        return {model.name: model for model in response.models}
