"""Text to image without gRPC: check a request, queue it, run it, encode the images.

`Generator` is what the servicer calls and what unit tests drive directly. It refuses bad
requests with `InvalidArgument` before they take a queue slot, answers `Unavailable` until the
pipeline is loaded, and runs the pipeline through the server's one-at-a-time job queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.common.errors import Unavailable
from services.modelserver.jobs import Progress, StepHook
from services.modelserver.limits import check_sampling, check_size
from services.modelserver.runner import GenerationOutput, PartialOutput, Runner
from services.qwen_image.pipeline import TextToImageJob, TextToImagePipeline
from services.qwen_image.settings import QwenImageSettings


@dataclass(frozen=True)
class GenerateSpec:
    """A text-to-image request as the caller sent it: 0 and None mean "server default"."""

    prompt: str
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    num_inference_steps: int = 0
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 0
    output_format: str = "png"
    partial_images: int = 0  # 0..3 previews in a stream (`generate_stream`)


class Generator:
    def __init__(
        self,
        settings: QwenImageSettings,
        pipeline: TextToImagePipeline | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.runner = Runner("qwen_image", settings, step_hook)

    async def load(self) -> None:
        """Loads the pipeline off the event loop (raises `PipelineLoadError` naming the path)."""
        self.pipeline = await asyncio.to_thread(TextToImagePipeline.load, self.settings)

    def check(self, spec: GenerateSpec) -> TextToImageJob:
        """The job for a request, or `InvalidArgument` naming what to fix."""
        sampling = check_sampling(
            self.settings,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            num_inference_steps=spec.num_inference_steps,
            true_cfg_scale=spec.true_cfg_scale,
            guidance_scale=spec.guidance_scale,
            seed=spec.seed,
            num_images=spec.num_images,
            output_format=spec.output_format,
            partial_images=spec.partial_images,
        )
        width = spec.width or self.settings.default_width
        height = spec.height or self.settings.default_height
        check_size(self.settings, width, height)
        return TextToImageJob(sampling, width, height)

    def _ready(self) -> TextToImagePipeline:
        if self.pipeline is None:
            raise Unavailable(
                f"the pipeline from {self.settings.location} is still loading; "
                "retry when the health service says SERVING"
            )
        return self.pipeline

    async def generate(self, spec: GenerateSpec) -> GenerationOutput:
        pipeline = self._ready()
        job = self.check(spec)
        return await self.runner.run(lambda step: pipeline.run(job, step), job.sampling)

    async def generate_stream(
        self, spec: GenerateSpec
    ) -> AsyncIterator[Progress | PartialOutput | GenerationOutput]:
        """Queue position, each step, the previews asked for, then the output."""
        pipeline = self._ready()
        job = self.check(spec)
        async for event in self.runner.stream(lambda step: pipeline.run(job, step), job.sampling):
            yield event

    async def close(self) -> None:
        await self.runner.close()
