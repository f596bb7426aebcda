"""Reliability suite fixtures, over the session mesh (tests/support/mesh.py).

`hosted`: a gateway over the mesh's storage and model servers whose providers service talks to
the fake hosted providers, so that every endpoint, chat included, can answer a valid request;
bad-input and provider-fault tests use it. `whole_mesh`: for tests that kill or stop a process;
afterwards every process of the mesh runs again and the gateway is ready.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.fixtures import ProviderFakes
from tests.reliability.fuzzing import TALLY
from tests.support.hosted import Hosted, hosted_gateway
from tests.support.mesh import Mesh
from tests.support.waiting import wait_until

# Short enough that a slow provider is given up on quickly, long enough for the fakes.
CHAT_DEADLINE_SECONDS = 4.0


def gateway_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def hosted(mesh: Mesh, provider_fakes: ProviderFakes) -> Iterator[Hosted]:
    with hosted_gateway(
        mesh,
        provider_fakes,
        "reliability-gateway",
        gateway_env={"GATEWAY_CHAT_DEADLINE_SECONDS": str(CHAT_DEADLINE_SECONDS)},
    ) as running:
        yield running


@pytest.fixture
def fakes(provider_fakes: ProviderFakes) -> Iterator[ProviderFakes]:
    provider_fakes.reset()
    yield provider_fakes
    provider_fakes.reset()


@pytest.fixture
def whole_mesh(mesh: Mesh) -> Iterator[Mesh]:
    """The mesh, made whole again after the test (whatever it killed or stopped)."""
    yield mesh
    for name in ("storage", "providers", "qwen_image", "qwen_edit", "gateway"):
        mesh.ensure_running(name)
    wait_until(lambda: gateway_ready(mesh.gateway_url), 60, "gateway /readyz")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz run's figure (test_fuzz.py), when it ran: requests tried and 5xx seen."""
    if TALLY.total:
        TALLY.write()
        terminalreporter.write_line(TALLY.figure())
