"""Runs one model server's pipeline calls through its job queue and encodes what they make.

`Runner` is what a model server's generator hands its pipeline work to: it queues the work
(bounded, one at a time), times the pipeline run, and encodes the images in a separate thread, so
the pipeline is free for the next caller while the last one's PNGs are written. Previews of a
stream are encoded the same way, always as PNG.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import torch

from services.common.errors import ResourceExhausted
from services.modelserver.images import EncodedImage, encode_image
from services.modelserver.jobs import JobQueue, Preview, Progress, StepFn, StepHook
from services.modelserver.limits import Sampling
from services.modelserver.settings import ModelServerSettings

Work = Callable[[StepFn], list[Any]]  # runs the pipeline, returns PIL images


@dataclass(frozen=True)
class GenerationOutput:
    images: list[EncodedImage]
    width: int
    height: int
    model: str
    elapsed_seconds: float  # pipeline time, queue and encoding excluded


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
        self.queue = JobQueue(name, settings.max_queue, step_hook)
        self.model = settings.model_name or settings.location

    async def run(self, work: Work, sampling: Sampling) -> GenerationOutput:
        job = self.queue.submit(_timed(work), sampling.steps)
        images, elapsed = await self.queue.result(job)
        return await self._encode(images, elapsed, sampling)

    async def stream(
        self, work: Work, sampling: Sampling
    ) -> AsyncIterator[Progress | PartialOutput | GenerationOutput]:
        """Queue position, each step, the previews asked for, then the output."""
        job = self.queue.submit(_timed(work), sampling.steps, streaming=True)
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
                encode_image(image, sampling.output_format, sampling.seed + index)
                for index, image in enumerate(images)
            ]
        )
        first = encoded[0]
        return GenerationOutput(encoded, first.width, first.height, self.model, elapsed)

    async def close(self) -> None:
        await self.queue.close()


def _timed(work: Work) -> Callable[[StepFn], tuple[list[Any], float]]:
    def run(step: StepFn) -> tuple[list[Any], float]:
        started = time.perf_counter()
        try:
            images = work(step)
        except torch.OutOfMemoryError as exc:
            # The request is too big for the device now; the server itself is fine.
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise ResourceExhausted(
                "out of device memory for this request; ask for fewer images or a smaller size"
            ) from exc
        return images, time.perf_counter() - started

    return run
