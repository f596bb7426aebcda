"""Streamed image answers as server-sent events, in OpenAI's gpt-image-1 streaming shapes.

`POST /v1/images/generations` (and `/v1/images/edits`) with `"stream": true` answer
`text/event-stream`; each event is an `event: <type>` line and a `data: <json>` line. `<kind>` is
`image_generation` or `image_edit`:

- `<kind>.progress`: `{type, step, total_steps, queue_position}`, while queued (step 0) and after
  every denoising step. Ours, not OpenAI's: clients that do not know it skip it.
- `<kind>.partial_image`: `{type, b64_json, partial_image_index, created_at, size, quality,
  background, output_format}` (+ `step`, `width`, `height`), one per preview asked for with
  `partial_images`; previews are PNG whatever the final format.
- `<kind>.completed`: one per image: `b64_json` (or `url` when the request said
  `response_format: "url"`, which OpenAI's schema does not foresee), `created_at`, `size`,
  `quality`, `background`, `output_format`, `usage` in OpenAI's shape (+ `index`, `seed`,
  `model`, `request_id`, `width`, `height`).

`size` is one of OpenAI's enum (1024x1024, 1024x1536, 1536x1024) or `auto` for any other size,
as its published schema allows; `width` and `height` say the size exactly.
- `error`: the error envelope (`{code, message, request_id, error: {...}}`), then the stream ends.

The first event is awaited before the answer starts, so what fails early (bad field, unknown
model, queue full, backend down) is an ordinary HTTP error envelope with its status. A client
that hangs up, before or during the stream, cancels the gRPC call: the model server stops the
job at its next step (`disconnect.unless_disconnected` first; then Starlette cancels the stream).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from services.common import requestid
from services.gateway.disconnect import unless_disconnected
from services.gateway.errors import ApiError, error_body
from services.gateway.streaming import DoneEvent, PartialEvent, StepEvent, StreamEvent
from services.gateway.usage import background, openai_usage, size_name

log = logging.getLogger("imagemesh.gateway.sse")

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# The routes' OpenAPI: a 200 may also be this stream.
OPENAPI: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": 'event: image_generation.progress\ndata: {"type": '
                '"image_generation.progress","step":1,"total_steps":20,"queue_position":0}\n\n',
            }
        },
        "description": "JSON, or with `stream: true` server-sent events (see the README)",
    }
}
# What a preview says about the request it belongs to.
PREVIEW = {"quality": "auto", "background": "opaque"}
EVENT_QUALITIES = frozenset({"low", "medium", "high", "auto"})


def sse(event: str, data: dict[str, Any]) -> str:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n"


def _output_format(mime_type: str) -> str:
    return {"image/jpeg": "jpeg", "image/webp": "webp"}.get(mime_type, "png")


def event_data(kind: str, event: StreamEvent) -> list[dict[str, Any]]:
    """One stream event -> the JSON objects sent for it (a done event: one per image)."""
    if isinstance(event, StepEvent):
        return [
            {
                "type": f"{kind}.progress",
                "step": event.step,
                "total_steps": event.total_steps,
                "queue_position": event.queue_position,
            }
        ]
    now = int(time.time())
    if isinstance(event, PartialEvent):
        image = event.image
        return [
            {
                "type": f"{kind}.partial_image",
                "b64_json": base64.b64encode(image.data).decode("ascii"),
                "partial_image_index": event.index,
                "step": event.step,
                "created_at": now,
                "size": size_name(image.width, image.height, allow_auto=True),
                "width": image.width,
                "height": image.height,
                "output_format": _output_format(image.mime_type),
                **PREVIEW,
            }
        ]
    return _completed(kind, event, now)


def _completed(kind: str, event: DoneEvent, now: int) -> list[dict[str, Any]]:
    outcome = event.outcome
    usage = openai_usage(outcome)
    quality = outcome.output.quality if outcome.output.quality in EVENT_QUALITIES else "auto"
    answers = []
    for index, image in enumerate(outcome.images):
        data: dict[str, Any] = {"type": f"{kind}.completed", **image.openai()}
        width, height = image.width or outcome.width, image.height or outcome.height
        data.update(
            index=index,
            created_at=now,
            size=size_name(width, height, allow_auto=True),
            width=width,
            height=height,
            quality=quality,
            background=background(outcome),
            output_format=outcome.output_format,
            usage=usage,
            model=outcome.model,
            request_id=requestid.get_request_id(),
        )
        if image.seed:
            data["seed"] = image.seed
        if outcome.revised_prompt:
            data["revised_prompt"] = outcome.revised_prompt
        answers.append(data)
    return answers


async def _encode(
    kind: str, first: StreamEvent, rest: AsyncIterator[StreamEvent]
) -> AsyncIterator[str]:
    try:
        for data in event_data(kind, first):
            yield sse(data["type"], data)
        async for event in rest:
            for data in event_data(kind, event):
                yield sse(data["type"], data)
    except ApiError as exc:
        yield sse("error", error_body(exc))
    except Exception:  # the status line is sent: the envelope goes in the stream
        log.exception("stream failed")
        rid = requestid.get_request_id()
        yield sse("error", error_body(ApiError(500, f"internal error; request id {rid}")))


async def respond(
    request: Request, kind: str, events: AsyncIterator[StreamEvent]
) -> StreamingResponse:
    """Awaits the first event (an early failure is a plain error envelope), then streams."""
    first = await unless_disconnected(request, anext(events))
    return StreamingResponse(
        _encode(kind, first, events), media_type="text/event-stream", headers=HEADERS
    )
