"""Runs one model server's pipeline calls through its job queue and encodes what they make.

`Runner` is what a model server's generator hands its pipeline work to: it queues the work
(bounded; compatible jobs batched into one call, up to `max_batch_images`), times the pipeline
call, and encodes each job's images in a separate thread, so the pipeline is free for the next
call while the last one's PNGs are written. Previews of a stream are encoded the same way, always
as PNG.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.modelserver.batching import Batchable, BatchStepFn
from services.modelserver.images import EncodedImage, encode_image
from services.modelserver.jobs import Job, JobQueue, Preview, Progress, StepHook
from services.modelserver.limits import Sampling
from services.modelserver.loader import choose_device
from services.modelserver.settings import ModelServerSettings
from services.modelserver.tokens import InputTokens

Work = Batchable[Any]  # a job's part of a pipeline call; the call returns PIL images per job
Timed = tuple[list[Any], float]  # a job's images, seconds of its call


@dataclass(frozen=True)
class GenerationOutput:
    images: list[EncodedImage]
    width: int
    height: int
    model: str
    elapsed_seconds: float  # pipeline time, queue and encoding excluded
    input_tokens: InputTokens = InputTokens()  # the request's, counted by the pipeline's tokenizer


@dataclass(frozen=True)
class PartialOutput:
    """A preview of a streamed job: the first image's latents after `step`, as a PNG."""

    step: int
    index: int  # 0-based, in the order the previews were made
    image: EncodedImage


class Runner:
    def __init__(
        self, name: str, settings: ModelServerSettings, step_hook: StepHook | None = None
    ) -> None:
        self.queue = JobQueue(
            name,
            settings.max_queue,
            step_hook,
            max_batch_images=batch_images(settings),
            batch_wait_ms=settings.batch_wait_ms,
        )
        self.model = settings.model_name or settings.location

    async def run(self, work: Work, sampling: Sampling) -> GenerationOutput:
        job: Job[Timed] = self.queue.submit(_timed(work), sampling.steps)
        images, elapsed = await self.queue.result(job)
        return await self._encode(images, elapsed, sampling)

    async def stream(
        self, work: Work, sampling: Sampling
    ) -> AsyncIterator[Progress | PartialOutput | GenerationOutput]:
        """Queue position, each step, the previews asked for, then the output."""
        job: Job[Timed] = self.queue.submit(_timed(work), sampling.steps, streaming=True)
        async for event in self.queue.events(job):
            if isinstance(event, Progress):
                yield event
            elif isinstance(event, Preview):
                image = await asyncio.to_thread(encode_image, event.images[0], "png", sampling.seed)
                yield PartialOutput(event.step, event.index, image)
            else:
                images, elapsed = event
                yield await self._encode(images, elapsed, sampling)

    async def _encode(
        self, images: list[Any], elapsed: float, sampling: Sampling
    ) -> GenerationOutput:
        encoded = await asyncio.to_thread(
            lambda: [
                encode_image(
                    image,
                    sampling.output_format,
                    sampling.seed + index,
                    sampling.output_compression,
                )
                for index, image in enumerate(images)
            ]
        )
        first = encoded[0]
        return GenerationOutput(encoded, first.width, first.height, self.model, elapsed)

    async def close(self) -> None:
        await self.queue.close()


def batch_images(settings: ModelServerSettings) -> int:
    """`max_batch_images`, or its default for the device: 8 on CUDA, 4 on CPU."""
    if settings.max_batch_images:
        return settings.max_batch_images
    device, _ = choose_device(settings.device or None)
    return 8 if device.startswith("cuda") else 4


def _timed(work: Work) -> Work:
    """The work with its call timed: each job's result is (images, seconds of the call)."""
    call = work.call

    def timed(items: list[Any], step: BatchStepFn) -> list[Timed]:
        started = time.perf_counter()
        results = call(items, step)
        elapsed = time.perf_counter() - started
        return [(images, elapsed) for images in results]

    return dataclasses.replace(work, call=timed)
