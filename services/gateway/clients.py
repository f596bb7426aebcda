"""The gateway's gRPC clients: one long-lived channel per backend (per replica for the model
servers, each call sent where the least work waits: `services/gateway/routing`), a deadline on
every call.

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
from services.gateway.apierror import ApiError
from services.gateway.errors import from_rpc_error
from services.gateway.routing.picker import picker
from services.gateway.routing.replicas import ReplicaSet
from services.gateway.routing.router import Router
from services.gateway.routing.stubs import RoutedStub
from services.gateway.settings import LOCAL_BACKENDS, GatewaySettings

log = logging.getLogger("imagemesh.gateway.clients")

BACKEND_LATENCY = Histogram(
    "imagemesh_gateway_backend_seconds",
    "Time of the gateway's gRPC calls, by backend, method and status code",
    ["backend", "method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

SERVING = health_pb2.HealthCheckResponse.SERVING


MODEL_SERVERS = ("qwen_image", "qwen_edit")


class Backends:
    """Channels and stubs of every backend; built inside the running event loop. The model
    servers' stubs are routers over their replicas (`services/gateway/routing`)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.routers = {name: self._router(name) for name in MODEL_SERVERS}
        self.channels: dict[str, grpc.aio.Channel] = {
            name: insecure_channel(settings.target(name), settings.max_message_bytes)
            for name in LOCAL_BACKENDS
            if name not in self.routers
        }
        self.qwen_image = RoutedStub(
            self.routers["qwen_image"], qwen_image_pb2_grpc.ImageGenerationStub
        )
        self.qwen_edit = RoutedStub(self.routers["qwen_edit"], qwen_edit_pb2_grpc.ImageEditingStub)
        # Other deployments of the qwen_image server (catalogue `server:`), by name.
        self.server_routers = {
            name: self._router(name, target) for name, target in settings.model_servers.items()
        }
        self.servers = {
            name: RoutedStub(router, qwen_image_pb2_grpc.ImageGenerationStub)
            for name, router in self.server_routers.items()
        }
        self.providers = providers_pb2_grpc.ProvidersStub(self.channels["providers"])
        self.storage = storage_pb2_grpc.StorageStub(self.channels["storage"])
        self.tasks = tasks_pb2_grpc.TasksStub(self.channels["tasks"])
        self._health = {
            name: health_pb2_grpc.HealthStub(channel) for name, channel in self.channels.items()
        }

    def image_stub(self, model: str, server: str) -> RoutedStub:
        """The qwen_image deployment serving `model`: its catalogue `server`, else the default."""
        if not server:
            return self.qwen_image
        stub = self.servers.get(server)
        if stub is None:
            raise ApiError(
                503,
                f"{model} is not deployed here: its server {server!r} has no address "
                "(set it in GATEWAY_MODEL_SERVERS)",
                "model",
            )
        return stub

    def edit_stub(self, model: str, server: str) -> RoutedStub:
        """The qwen_edit deployment serving `model` (Qwen-Image-Layered's own server): its
        catalogue `server`, else the default one."""
        if not server:
            return self.qwen_edit
        self.image_stub(model, server)  # the same 503 when the server has no address
        return RoutedStub(self.server_routers[server], qwen_edit_pb2_grpc.ImageEditingStub)

    def _router(self, name: str, target: str | None = None) -> Router:
        settings = self.settings
        replicas = ReplicaSet(
            name,
            target or settings.target(name),
            lambda address: insecure_channel(address, settings.max_message_bytes),
        )
        router = Router(
            replicas,
            picker(settings.routing_policy),
            poll_seconds=settings.load_poll_ms / 1000,
            resolve_seconds=settings.resolve_seconds,
            probe_seconds=settings.health_deadline_seconds,
        )
        router.start()
        return router

    async def close(self) -> None:
        await asyncio.gather(
            *(channel.close() for channel in self.channels.values()),
            *(router.close() for router in self.routers.values()),
            *(router.close() for router in self.server_routers.values()),
        )

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
        """SERVING, NOT_SERVING, UNKNOWN, ... or UNREACHABLE (no answer within the deadline); a
        model server is SERVING when one of its replicas is."""
        router = self.routers.get(backend) or self.server_routers.get(backend)
        if router is not None:
            return await router.health(self.settings.health_deadline_seconds)
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

    async def describe(self, backend: str) -> common_pb2.ModelServerInfo | None:
        """What a model server runs with (acceleration switches, LoRA adapters), or None when
        it does not answer (or is not a model server)."""
        router = self.routers.get(backend) or self.server_routers.get(backend)
        if router is None:
            return None
        stub = common_pb2_grpc.ModelServerStub(router.any_channel())
        try:
            info: common_pb2.ModelServerInfo = await stub.Describe(
                common_pb2.DescribeModelServerRequest(),
                timeout=self.settings.health_deadline_seconds,
                metadata=requestid.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError:
            return None
        return info

    async def describes(
        self, backends: Sequence[str]
    ) -> dict[str, common_pb2.ModelServerInfo | None]:
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
