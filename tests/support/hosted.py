"""A providers process on the fake hosted providers, and a gateway over it and the session mesh:
what the tests of hosted models (and of their faults) talk to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.fakes.fixtures import ProviderFakes
from tests.support.mesh import Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving

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
    target = f"127.0.0.1:{free_port()}"
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
    try:
        gateway, url = mesh.another_gateway(
            name, {"GATEWAY_PROVIDERS_TARGET": target, **(gateway_env or {})}
        )
    except BaseException:
        providers.stop()
        raise
    try:
        yield Hosted(providers, target, gateway, int(url.rsplit(":", 1)[1]))
    finally:
        gateway.stop()
        providers.stop()
