"""A streamed generation or edit as plain events, whatever the backend.

A model server's GenerateStream / EditStream says where the job waits, each denoising step and
each preview (`imagemesh.v1.GenerationEvent`); `relay` turns those into `StepEvent`s and
`PartialEvent`s, and the final result, once delivered (links or base64), into one `DoneEvent`.
`services/gateway/sse.py` writes them in OpenAI's streaming shapes. Errors, before or during the
stream, raise `ApiError` (Backends.stream maps the gRPC status).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from imagemesh.v1 import common_pb2

from services.gateway.errors import ApiError
from services.gateway.outcome import Outcome


@dataclass(frozen=True)
class StepEvent:
    step: int  # denoising steps done (0 while queued or starting)
    total_steps: int
    queue_position: int  # jobs ahead (0 = running)


@dataclass(frozen=True)
class PartialEvent:
    index: int  # 0-based
    step: int
    image: common_pb2.Image


@dataclass(frozen=True)
class DoneEvent:
    outcome: Outcome


StreamEvent = StepEvent | PartialEvent | DoneEvent


async def relay(
    messages: AsyncIterator[common_pb2.GenerationEvent],
    finish: Callable[[common_pb2.GenerationResult], Awaitable[Outcome]],
    what: str,
) -> AsyncIterator[StreamEvent]:
    """A model server's stream -> events; `finish` delivers the result."""
    async for message in messages:
        kind = message.WhichOneof("event")
        if kind == "progress":
            progress = message.progress
            yield StepEvent(progress.step, progress.total_steps, progress.queue_position)
        elif kind == "partial_image":
            partial = message.partial_image
            yield PartialEvent(partial.partial_image_index, partial.step, partial.image)
        elif kind == "result":
            yield DoneEvent(await finish(message.result))
            return
    raise ApiError(502, f"{what} ended its stream without a result")
