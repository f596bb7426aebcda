"""A providers process on the fake hosted providers, and a gateway over it and the session mesh:
what the tests of hosted models (and of their faults) talk to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.fakes.fixtures import ProviderFakes
from tests.support.mesh import Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving, port_open

# The fakes answer at once: polls and backoff need not wait like a real provider's.
FAST_PROVIDERS = {
    "PROVIDERS_POLL_INITIAL_SECONDS": "0.01",
    "PROVIDERS_POLL_MAX_SECONDS": "0.05",
    "PROVIDERS_RETRY_BACKOFF_SECONDS": "0.01",
    "PROVIDERS_MAX_RETRY_AFTER_SECONDS": "1",
}


@dataclass
class Hosted:
    providers: ServiceProcess
    providers_target: str
    gateway: ServiceProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def hosted_gateway(
    mesh: Mesh,
    fakes: ProviderFakes,
    name: str,
    providers_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
) -> Iterator[Hosted]:
    """Starts `<name>-providers` (on `fakes`) and `<name>` (a gateway like the mesh's, whose
    providers are that process); stops both at the end."""
    target, port = f"127.0.0.1:{free_port()}", free_port()
    providers = ServiceProcess.module(
        f"{name}-providers",
        "services.providers",
        env={
            **fakes.env(),
            **FAST_PROVIDERS,
            "PROVIDERS_LISTEN": target,
            "PROVIDERS_METRICS_LISTEN": "",
            **(providers_env or {}),
        },
        ready=lambda: grpc_serving(target),
    ).start()
    env = {k: v for k, v in mesh.process("gateway").env.items() if k.startswith("GATEWAY_")}
    try:
        gateway = ServiceProcess.module(
            name,
            "services.gateway",
            env={
                **env,
                "GATEWAY_PORT": str(port),
                "GATEWAY_PROVIDERS_TARGET": target,
                **(gateway_env or {}),
            },
            ready=lambda: port_open("127.0.0.1", port),
        ).start()
    except BaseException:
        providers.stop()
        raise
    try:
        yield Hosted(providers, target, gateway, port)
    finally:
        gateway.stop()
        providers.stop()
