"""Builds and runs the providers gRPC server: adapters loaded, health SERVING, metrics.

`build()` is what tests use (a real server on a real port, settings of their own); `serve()` is
what `python -m services.providers` runs until SIGTERM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imagemesh.v1 import providers_pb2_grpc

from services.common.server import MeshServer
from services.providers.adapter import AdapterEnv
from services.providers.images import ImageFetcher
from services.providers.registry import Registry, RegistryError
from services.providers.rewrite import PromptRewriter
from services.providers.servicer import ProvidersServicer
from services.providers.settings import ProvidersSettings
from services.providers.upstream import UpstreamPool

log = logging.getLogger("imagemesh.providers")

SERVICE_NAME = "imagemesh.v1.Providers"


@dataclass
class ProvidersServer:
    server: MeshServer
    registry: Registry
    env: AdapterEnv

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.env.upstreams.aclose()
        await self.env.images.aclose()


async def build(settings: ProvidersSettings) -> ProvidersServer:
    """Loads the adapters (RegistryError names the file when one is wrong), starts listening
    and reports SERVING."""
    env = AdapterEnv(settings, UpstreamPool(settings), ImageFetcher(settings))
    registry = Registry.load(env)
    rewriter = PromptRewriter(registry, settings.rewrite_model, settings.rewrite_timeout_seconds)
    # Nobody fails a chat over on the handler's say-so: the request id goes back with the answer.
    server = MeshServer(settings, [SERVICE_NAME], announce_calls=False)
    providers_pb2_grpc.add_ProvidersServicer_to_server(
        ProvidersServicer(registry, rewriter, settings.max_message_bytes), server.grpc
    )
    await server.start()
    for model in registry.models():
        if not model.ready:
            log.warning("%s not ready: %s", model.name, model.reason)
    await server.set_serving()
    return ProvidersServer(server, registry, env)


async def serve(settings: ProvidersSettings) -> None:
    try:
        running = await build(settings)
    except RegistryError as exc:
        # A configuration mistake: one line that names the files, not a traceback.
        log.error("cannot start: %s", exc)
        raise SystemExit(2) from None
    try:
        await running.server.wait_for_shutdown_signal()
    finally:
        await running.env.upstreams.aclose()
        await running.env.images.aclose()
