"""Session fixtures: the three fake providers, started once (a pytest plugin, registered by the
root conftest). Tests that change a fake's toggles call `fake.reset()` first or after.

    def test_x(openai_fake, dashscope_fake, liblib_fake): ...
    provider_fakes.env()  # every provider's key and base URL, for a providers process
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.dashscope_server import FakeDashScope
from tests.fakes.liblib_server import FakeLiblib
from tests.fakes.openai_server import FakeOpenAI


@dataclass
class ProviderFakes:
    openai: FakeOpenAI
    dashscope: FakeDashScope
    liblib: FakeLiblib

    def env(self) -> dict[str, str]:
        # The fakes serve their result images from loopback, which the providers' fetcher
        # refuses unless allowed.
        allow = {"PROVIDERS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8"}
        return {**self.openai.env(), **self.dashscope.env(), **self.liblib.env(), **allow}

    def reset(self) -> None:
        for fake in (self.openai, self.dashscope, self.liblib):
            fake.reset()


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def dashscope_fake() -> Iterator[FakeDashScope]:
    fake = FakeDashScope().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def liblib_fake() -> Iterator[FakeLiblib]:
    fake = FakeLiblib().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def provider_fakes(
    openai_fake: FakeOpenAI, dashscope_fake: FakeDashScope, liblib_fake: FakeLiblib
) -> ProviderFakes:
    return ProviderFakes(openai_fake, dashscope_fake, liblib_fake)
