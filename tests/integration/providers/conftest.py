"""The providers service as a real gRPC server on a real port, over the three fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.fixtures import ProviderFakes
from tests.support.providers import Running, providers_settings, running_providers


@pytest.fixture(scope="session")
async def providers(provider_fakes: ProviderFakes) -> AsyncIterator[Running]:
    async with running_providers(providers_settings(provider_fakes)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_fakes(provider_fakes: ProviderFakes) -> Iterator[ProviderFakes]:
    """Every test starts with healthy fakes and leaves them so."""
    provider_fakes.reset()
    yield provider_fakes
    provider_fakes.reset()
