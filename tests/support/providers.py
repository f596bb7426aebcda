"""Helpers for the providers tests: settings against the fake providers, a running server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from imagemesh.v1 import providers_pb2_grpc

from services.common.channels import insecure_channel
from services.providers.server import ProvidersServer, build
from services.providers.settings import ProvidersSettings
from tests.fakes.fixtures import ProviderFakes

# Fast polls and backoff: the fakes answer at once, and tests never wait on wall time.
FAST = {
    "listen": "127.0.0.1:0",
    "metrics_listen": "",
    "poll_initial_seconds": 0.01,
    "poll_max_seconds": 0.05,
    "retry_backoff_seconds": 0.01,
    "max_retry_after_seconds": 1.0,
    "request_timeout_seconds": 10.0,
    "shutdown_grace_seconds": 1.0,
}


def providers_settings(fakes: ProviderFakes | None = None, **overrides: Any) -> ProvidersSettings:
    """Settings for an in-process providers server on port 0; keys and URLs of `fakes`, or
    no keys at all (init values win over any OPENAI_API_KEY... in the environment)."""
    values: dict[str, Any] = {
        **FAST,
        "openai_api_key": "",
        "dashscope_api_key": "",
        "liblib_access_key": "",
        "liblib_secret_key": "",
    }
    if fakes is not None:
        values.update(
            openai_api_key=fakes.openai.api_key,
            openai_base_url=fakes.openai.base_url,
            dashscope_api_key=fakes.dashscope.api_key,
            dashscope_base_url=fakes.dashscope.url,
            liblib_access_key=fakes.liblib.access_key,
            liblib_secret_key=fakes.liblib.secret_key,
            liblib_base_url=fakes.liblib.url,
            # The fakes serve their result images from loopback.
            fetch_allow_networks="127.0.0.0/8",
        )
    values.update(overrides)
    return ProvidersSettings(**values)


@dataclass
class Running:
    server: ProvidersServer
    channel: grpc.aio.Channel
    stub: providers_pb2_grpc.ProvidersStub


@asynccontextmanager
async def running_providers(settings: ProvidersSettings) -> AsyncIterator[Running]:
    """The real providers gRPC server on a real port, and a stub to it."""
    server = await build(settings)
    channel = insecure_channel(server.address)
    try:
        yield Running(server, channel, providers_pb2_grpc.ProvidersStub(channel))
    finally:
        await channel.close()
        await server.stop(0)
