"""The gRPC server every imagemesh service runs.

`MeshServer` is an asyncio gRPC server with the standard health service (NOT_SERVING until the
service says it is ready, and again on shutdown), server reflection, the request-id / metrics /
error interceptor, message limits from the settings, and a Prometheus endpoint. `run()` drives one
until SIGTERM or SIGINT: health turns NOT_SERVING, in-flight calls get the grace period, the
process exits 0.

    server = MeshServer(settings, ["imagemesh.v1.Storage"])
    storage_pb2_grpc.add_StorageServicer_to_server(servicer, server.grpc)
    await server.start()
    await server.set_serving()
    await server.wait_for_shutdown_signal()
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import tracing
from services.common.channels import channel_options
from services.common.interceptors import ServerInterceptor
from services.common.metrics import start_metrics_server
from services.common.settings import ServerSettings

log = logging.getLogger("imagemesh.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# A client re-resolves DNS only when a connection closes: closing each after 5 minutes (calls in
# flight get 10 more) lets round_robin clients find pods that scaling added (deploy/).
CONNECTION_AGE = [
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 10 * 60 * 1000),
]


class MeshServer:
    def __init__(
        self, settings: ServerSettings, service_names: Sequence[str], announce_calls: bool = True
    ) -> None:
        """`announce_calls`: the request id goes out as each call begins (a client can tell the
        handler took it) or with its answer, one write less (services/common/interceptors.py)."""
        self.settings = settings
        self.service_names = list(service_names)
        self.grpc = grpc.aio.server(
            # The trace's server span outermost, so every log line and error runs inside it.
            interceptors=[*tracing.server_interceptors(), ServerInterceptor(announce_calls)],
            options=[*channel_options(settings.max_message_bytes), *CONNECTION_AGE],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.grpc
        )
        self.port = 0
        self.metrics_port: int | None = None
        self.serving = False  # what health says now (model servers report it in their Load)

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0] or "127.0.0.1"
        return f"{host}:{self.port}"

    async def start(self) -> int:
        """Listens (health NOT_SERVING until `set_serving`); returns the bound port."""
        await self._set_all(NOT_SERVING)
        self.port = self.grpc.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.listen}")
        await self.grpc.start()
        self.metrics_port = start_metrics_server(self.settings.metrics_listen)
        log.info(
            "listening on %s (%s), metrics on %s",
            self.address,
            ", ".join(self.service_names),
            self.metrics_port or "off",
        )
        return self.port

    async def set_serving(self, serving: bool = True) -> None:
        await self._set_all(SERVING if serving else NOT_SERVING)

    async def _set_all(self, status: int) -> None:
        self.serving = status == SERVING
        await self.health.set("", status)
        for name in self.service_names:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING at once, then in-flight calls get `grace` seconds to finish."""
        self.serving = False
        await self.health.enter_graceful_shutdown()
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self.grpc.stop(grace)

    async def wait_for_shutdown_signal(self) -> None:
        """Serves until SIGTERM or SIGINT, then stops gracefully."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        log.info("shutting down: draining for up to %.0f s", self.settings.shutdown_grace_seconds)
        await self.stop()
        log.info("stopped")


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs a service's async main; exits non-zero with a one-line reason if it fails."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except SystemExit:
        raise
    except Exception as exc:
        log.exception("fatal: %s", exc)
        raise SystemExit(1) from exc
