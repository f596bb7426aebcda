"""Starts a model server: listen at once (NOT_SERVING), load the pipeline, then SERVING.

Loading real weights takes minutes, so the server listens first and the health service says
NOT_SERVING meanwhile (calls get UNAVAILABLE); a load failure stops the process with a non-zero
exit and a message naming the location. SIGTERM turns health NOT_SERVING, gives in-flight and
queued calls the grace period, then stops the job queue.

A server describes itself once as a `ServerKind` (its name, gRPC service, settings class,
generator and servicer); `kind.start(settings)` and `kind.serve(settings)` are the same for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from services.common.logs import configure_logging
from services.common.server import MeshServer
from services.modelserver import load
from services.modelserver.controlnets import ControlEntry
from services.modelserver.info import add_info_servicer
from services.modelserver.jobs import StepHook
from services.modelserver.loader import PipelineLoadError
from services.modelserver.loras import LoraEntry
from services.modelserver.runner import Runner
from services.modelserver.settings import ModelServerSettings

log = logging.getLogger("imagemesh.modelserver")


class Loadable(Protocol):
    runner: Runner  # its job queue's load is what the server's Load answers

    async def load(self) -> None: ...

    def lora_entries(self) -> list[LoraEntry]: ...

    def controlnet_entries(self) -> list[ControlEntry]: ...

    async def close(self) -> None: ...


Register = Callable[[grpc.aio.Server], None]


@dataclass
class ModelService:
    server: MeshServer
    generator: Loadable

    @property
    def address(self) -> str:
        return self.server.address

    async def close(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.generator.close()


async def start(
    settings: ModelServerSettings, generator: Loadable, register: Register, service_name: str
) -> ModelService:
    """Listens, loads the pipeline, reports SERVING; raises `PipelineLoadError` (server stopped)."""
    server = MeshServer(settings, [service_name])
    register(server.grpc)
    # Its switches and adapters, for the gateway's /v1/models; its load, for the routing.
    add_info_servicer(
        settings,
        server.grpc,
        load.reporter(generator.runner.queue, lambda: server.serving),
        generator.lora_entries,
        generator.controlnet_entries,
    )
    await server.start()
    try:
        await generator.load()
    except BaseException:
        await server.stop(0)
        raise
    await server.set_serving()
    return ModelService(server, generator)


async def serve(
    settings: ModelServerSettings, generator: Loadable, register: Register, service_name: str
) -> None:
    """Serves until SIGTERM / SIGINT; exits non-zero naming the location if the load fails."""
    configure_logging(settings.log_level)
    try:
        service = await start(settings, generator, register, service_name)
    except PipelineLoadError as exc:
        log.error("%s", exc)
        raise SystemExit(f"{service_name}: {exc}") from exc
    await service.server.wait_for_shutdown_signal()
    await generator.close()


@dataclass(frozen=True)
class ServerKind:
    """What makes one model server: everything else about starting it is shared."""

    name: str  # "qwen_image": the process name in messages
    service_name: str  # the full gRPC service name health reports
    env_prefix: str  # "QWEN_IMAGE_"
    settings_type: type[ModelServerSettings]
    generator: Callable[..., Loadable]  # (settings, step_hook=...)
    servicer: Callable[[Any], Any]  # the servicer around a generator
    add_servicer: Callable[[Any, grpc.aio.Server], None]  # the generated add_..._to_server

    def _parts(
        self, settings: ModelServerSettings, step_hook: StepHook | None
    ) -> tuple[Loadable, Register]:
        generator = self.generator(settings, step_hook=step_hook)
        servicer = self.servicer(generator)
        return generator, lambda server: self.add_servicer(servicer, server)

    async def start(
        self, settings: ModelServerSettings, step_hook: StepHook | None = None
    ) -> ModelService:
        """Listens, loads the pipeline, reports SERVING; the caller stops it with `close()`."""
        generator, register = self._parts(settings, step_hook)
        return await start(settings, generator, register, self.service_name)

    async def serve(self, settings: ModelServerSettings) -> None:
        generator, register = self._parts(settings, None)
        await serve(settings, generator, register, self.service_name)
