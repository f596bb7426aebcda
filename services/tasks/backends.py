"""The task service's gRPC clients: Qwen-Image (the default deployment and those named in
TASKS_MODEL_SERVERS), the providers service and storage.

One long-lived channel per backend (reconnecting on its own, `services.common.channels`), a
deadline and the request id on every call. A backend's error is raised as a `BackendError` that
keeps the backend's status code (the worker turns it into the task's error code: a full queue
defers the task, anything else fails it) with a message that names the model or service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from imagemesh.v1 import (
    providers_pb2_grpc,
    qwen_edit_pb2_grpc,
    qwen_image_pb2_grpc,
    storage_pb2_grpc,
)

from services.common import requestid
from services.common.channels import insecure_channel
from services.common.errors import ServiceError
from services.tasks.settings import TasksSettings


class BackendError(ServiceError):
    """A backend's gRPC error, with its status code and a message that says which backend."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def backend_error(exc: grpc.aio.AioRpcError, what: str) -> BackendError:
    code, details = exc.code(), exc.details() or ""
    lowered = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in lowered or "connection refused" in lowered or "dns" in lowered
    ):
        # Internal addresses are for the log; the task's reader learns which model is down.
        return BackendError(code, f"{what} is unavailable; try again shortly")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return BackendError(
            code, f"{what} did not answer within the deadline; try a smaller or simpler request"
        )
    return BackendError(code, details or f"{what} failed ({code.name})")


def unserved(model: str, server: str) -> str:
    return (
        f"model {model!r} is not served as a task here: the tasks service has no address for "
        f"its server {server!r} (set it in TASKS_MODEL_SERVERS)"
    )


class Backends:
    """Channels and stubs of every backend a task calls; built inside the running event loop."""

    def __init__(self, settings: TasksSettings) -> None:
        self.settings = settings
        self.channels = {
            name: insecure_channel(target, settings.max_message_bytes)
            for name, target in (
                ("qwen_image", settings.qwen_image_target),
                ("providers", settings.providers_target),
                ("storage", settings.storage_target),
            )
        }
        self.qwen_image = qwen_image_pb2_grpc.ImageGenerationStub(self.channels["qwen_image"])
        # Other deployments of the qwen_image server (catalogue `server:`), by name.
        self.channels.update(
            (f"server {name}", insecure_channel(target, settings.max_message_bytes))
            for name, target in settings.model_servers.items()
        )
        self.servers = {
            name: qwen_image_pb2_grpc.ImageGenerationStub(self.channels[f"server {name}"])
            for name in settings.model_servers
        }
        self.providers = providers_pb2_grpc.ProvidersStub(self.channels["providers"])
        self.storage = storage_pb2_grpc.StorageStub(self.channels["storage"])

    def image_stub(self, model: str, server: str) -> qwen_image_pb2_grpc.ImageGenerationStub:
        """The qwen_image deployment a task runs on: its spec's `server`, else the default."""
        if not server:
            return self.qwen_image
        stub = self.servers.get(server)
        if stub is None:
            raise BackendError(grpc.StatusCode.FAILED_PRECONDITION, unserved(model, server))
        return stub

    def edit_stub(self, model: str, server: str) -> qwen_edit_pb2_grpc.ImageEditingStub:
        """The qwen_edit deployment a Layered task runs on (its spec's `server`)."""
        self.image_stub(model, server)  # the same refusal when the server has no address
        return qwen_edit_pb2_grpc.ImageEditingStub(self.channels[f"server {server}"])

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def call(
        self, method: Callable[..., Any], request: Any, *, deadline: float, what: str
    ) -> Any:
        """`await method(request)` with a deadline and the request id; errors: BackendError."""
        try:
            return await method(request, timeout=deadline, metadata=requestid.outgoing_metadata())
        except grpc.aio.AioRpcError as exc:
            raise backend_error(exc, what) from None
