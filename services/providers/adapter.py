"""What an adapter is: the base class every provider adapter (built-in or plug-in) extends.

An adapter declares the models it serves and implements the calls it supports:

    @register_adapter("my-provider")
    class MyAdapter(Adapter):
        provider = "my-provider"
        models = ("my-model",)
        kind = "image"

        def missing_config(self) -> str | None:
            return None if os.environ.get("MY_PROVIDER_KEY") else "MY_PROVIDER_KEY"

        async def generate(self, spec: ImageSpec) -> ImagesResult: ...

`self.env` gives the pooled HTTP client per provider (`env.upstream(...)`) and the result image
downloader (`env.images`). Raise `services.common.errors` exceptions for anything that failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar

from services.providers.images import ImageFetcher
from services.providers.settings import ProvidersSettings
from services.providers.types import (
    ChatDelta,
    ChatResult,
    ChatSpec,
    EditSpec,
    ImageSpec,
    ImagesResult,
)
from services.providers.upstream import Upstream, UpstreamPool

KINDS = ("chat", "image", "edit")


@dataclass
class AdapterEnv:
    """What the server gives every adapter: settings, pooled upstreams, the image downloader."""

    settings: ProvidersSettings
    upstreams: UpstreamPool
    images: ImageFetcher

    def upstream(self, name: str, factory: Callable[[], Upstream]) -> Upstream:
        """The one client of provider `name`, made by `factory` on first use."""
        return self.upstreams.get(name, factory)


class Adapter:
    """Base class. Set `provider`, `models` and `kind`; override the calls the models answer."""

    task_type: ClassVar[str] = ""  # set by @register_adapter
    provider: ClassVar[str] = ""
    models: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "chat"  # chat | image | edit: what ListModels reports

    def __init__(self, env: AdapterEnv) -> None:
        self.env = env
        self.settings = env.settings

    def missing_config(self) -> str | None:
        """The environment variable(s) to set before this adapter can work; None when ready."""
        return None

    @classmethod
    def capabilities(cls) -> list[str]:
        """The calls this adapter implements: chat, chat_stream, generate, edit."""
        calls = ("chat", "chat_stream", "generate", "edit")
        return [c for c in calls if getattr(cls, c) is not getattr(Adapter, c)]

    async def chat(self, spec: ChatSpec) -> ChatResult:
        raise NotImplementedError

    def chat_stream(self, spec: ChatSpec) -> AsyncIterator[ChatDelta]:
        raise NotImplementedError

    async def generate(self, spec: ImageSpec) -> ImagesResult:
        raise NotImplementedError

    async def edit(self, spec: EditSpec) -> ImagesResult:
        raise NotImplementedError
