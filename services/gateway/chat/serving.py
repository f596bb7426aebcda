"""Chat completions, forwarded to the providers service (Providers.Chat / ChatStream).

Until the providers service is up, calls answer the 503 envelope ("<model> is unavailable").
Plain class: testable without HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.gateway.catalog import Catalog
from services.gateway.chat.protocol import (
    ChatCompletionRequest,
    ChunkFrames,
    completion,
    now,
    to_proto,
)
from services.gateway.clients import Backends
from services.gateway.settings import GatewaySettings


class ChatService:
    def __init__(self, settings: GatewaySettings, catalog: Catalog, backends: Backends) -> None:
        self._settings = settings
        self._catalog = catalog
        self._backends = backends

    async def complete(self, request: ChatCompletionRequest) -> dict[str, Any]:
        entry = self._catalog.resolve(request.model, "chat")
        response = await self._backends.unary(
            "providers",
            self._backends.providers.Chat,
            to_proto(request, entry.name),
            deadline=self._settings.chat_deadline_seconds,
            what=entry.name,
        )
        return completion(response, entry.name)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[bytes]:
        """OpenAI chunks as `data:` frames; a failure raises ApiError (before or during it)."""
        entry = self._catalog.resolve(request.model, "chat")
        frames = ChunkFrames(entry.name, now())
        async for message in self._backends.stream(
            "providers",
            self._backends.providers.ChatStream,
            to_proto(request, entry.name),
            deadline=self._settings.chat_deadline_seconds,
            what=entry.name,
        ):
            yield frames.frame(message)
