"""The Providers gRPC servicer: proto in, plain types to the adapter, proto out.

Each call runs under the caller's deadline (`context.time_remaining()`), which bounds upstream
requests, retries and task polls. A rate-limited call also sends `retry-after` (seconds) in the
trailing metadata when the provider said how long to wait.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import grpc
from imagemesh.v1 import providers_pb2, providers_pb2_grpc

from services.common.errors import ResourceExhausted
from services.common.settings import MIB
from services.providers import convert
from services.providers.deadline import deadline_in
from services.providers.metrics import observed
from services.providers.registry import Registry
from services.providers.rewrite import PromptRewriter
from services.providers.types import ImagesResult
from services.providers.upstream import RateLimited


@contextmanager
def _call_scope(
    context: grpc.aio.ServicerContext, registry: Registry, model: str, call: str
) -> Iterator[None]:
    provider = registry.provider_of(model)
    # An unknown model's name is the caller's text: not a label (unbounded series).
    label = model if provider != "unknown" else "unknown"
    with deadline_in(context.time_remaining()), observed(provider, label, call):
        try:
            yield
        except RateLimited as exc:
            if exc.retry_after is not None:
                seconds = str(max(1, math.ceil(exc.retry_after)))
                # Added to what is there: the interceptor's request id.
                kept = tuple(context.trailing_metadata() or ())
                context.set_trailing_metadata((*kept, ("retry-after", seconds)))
            raise


class ProvidersServicer(providers_pb2_grpc.ProvidersServicer):
    def __init__(
        self, registry: Registry, rewriter: PromptRewriter, max_message_bytes: int = 64 * MIB
    ) -> None:
        self._registry = registry
        self._rewriter = rewriter
        self._max_bytes = max_message_bytes

    def _images(self, result: ImagesResult) -> providers_pb2.ProviderImagesResponse:
        response = convert.images_response(result)
        size = response.ByteSize()
        if size > self._max_bytes:
            # gRPC would refuse to send it with a bare "message larger than max": say what to do.
            count = sum(len(g.images) for g in result.results)
            raise ResourceExhausted(
                f"the answer holds {count} images ({size // MIB} MB), over the "
                f"{self._max_bytes // MIB} MB message limit; ask for fewer images per call"
            )
        return response

    async def Chat(self, request, context):
        with _call_scope(context, self._registry, request.model, "chat"):
            adapter = self._registry.ready_adapter_for(request.model, "chat")
            result = await adapter.chat(convert.chat_spec(request))
        return convert.chat_response(result)

    async def ChatStream(self, request, context) -> AsyncIterator[providers_pb2.ChatChunk]:
        with _call_scope(context, self._registry, request.model, "chat_stream"):
            adapter = self._registry.ready_adapter_for(request.model, "chat_stream")
            async for delta in adapter.chat_stream(convert.chat_spec(request)):
                yield convert.chat_chunk(delta)

    async def GenerateImages(self, request, context):
        with _call_scope(context, self._registry, request.model, "generate"):
            adapter = self._registry.ready_adapter_for(request.model, "generate")
            result = await adapter.generate(convert.image_spec(request))
        return self._images(result)

    async def EditImages(self, request, context):
        with _call_scope(context, self._registry, request.model, "edit"):
            adapter = self._registry.ready_adapter_for(request.model, "edit")
            result = await adapter.edit(convert.edit_spec(request))
        return self._images(result)

    async def ListModels(self, request, context):
        return convert.models_response(self._registry.models())

    async def RewritePrompt(self, request, context):
        with deadline_in(context.time_remaining()):
            rewrite = await self._rewriter.rewrite(request.prompt, request.model)
        return convert.rewrite_response(rewrite)
