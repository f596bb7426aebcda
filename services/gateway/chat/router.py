"""POST /v1/chat/completions: JSON answer, or server-sent events with `stream: true`.

A stream's first chunk is awaited before the answer starts, so a failure before it (unknown
model, providers down) is a normal HTTP error envelope; a failure later is sent as a last
`data: {error...}` event (what the OpenAI SDK raises from), then the stream ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.gateway.bodies import json_body, read_json
from services.gateway.chat.protocol import ChatCompletionRequest, event
from services.gateway.chat.serving import ChatService
from services.gateway.disconnect import unless_disconnected
from services.gateway.errors import ApiError, error_body
from services.gateway.validation import parse

router = APIRouter(tags=["chat"])


@router.post(
    "/v1/chat/completions",
    summary="Chat completion on a hosted model (OpenAI shape; `stream: true` for SSE)",
    openapi_extra=json_body(ChatCompletionRequest),
    response_model=None,
)
async def chat_completions(request: Request) -> Any:
    body = parse(ChatCompletionRequest, await read_json(request))
    service: ChatService = request.app.state.chat
    if not body.stream:
        return JSONResponse(await unless_disconnected(request, service.complete(body)))
    chunks = service.stream(body)
    first = await anext(chunks, None)
    return StreamingResponse(
        _events(first, chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    try:
        async for frame in rest:
            yield frame
    except ApiError as exc:
        yield event(error_body(exc))
        return
    yield b"data: [DONE]\n\n"
