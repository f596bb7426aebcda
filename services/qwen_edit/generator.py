"""Image editing without gRPC: check a request and its images, queue it, run it, encode.

`EditGenerator` is what the servicer calls and what unit tests drive directly. Input images are
decoded (in a thread) and checked before the request takes a queue slot: an undecodable image, a
URL instead of bytes, or more images than the loaded pipeline takes is an `InvalidArgument`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from PIL import Image

from services.common.errors import InvalidArgument, Unavailable
from services.modelserver.images import decode_image
from services.modelserver.jobs import Progress, StepHook
from services.modelserver.limits import check_sampling, check_size
from services.modelserver.runner import GenerationOutput, PartialOutput, Runner
from services.qwen_edit.pipeline import EditJob, EditPipeline, default_size
from services.qwen_edit.settings import QwenEditSettings

ImageSource = bytes | str  # encoded bytes, or a URL (which model servers do not fetch)


@dataclass(frozen=True)
class EditSpec:
    """An edit request as the caller sent it: 0 and None mean "server default"."""

    prompt: str
    images: list[ImageSource] = field(default_factory=list)
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    num_inference_steps: int = 0
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 0
    output_format: str = "png"
    partial_images: int = 0  # 0..3 previews in a stream (`edit_stream`)
    mask: ImageSource | None = None  # no inpainting pipeline here: refused


class EditGenerator:
    def __init__(
        self,
        settings: QwenEditSettings,
        pipeline: EditPipeline | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.runner = Runner("qwen_edit", settings, step_hook)

    async def load(self) -> None:
        """Loads the pipeline off the event loop (raises `PipelineLoadError` naming the path)."""
        self.pipeline = await asyncio.to_thread(EditPipeline.load, self.settings)

    def _ready(self) -> EditPipeline:
        if self.pipeline is None:
            raise Unavailable(
                f"the pipeline from {self.settings.location} is still loading; "
                "retry when the health service says SERVING"
            )
        return self.pipeline

    async def check(self, spec: EditSpec) -> EditJob:
        """The job for a request, or `InvalidArgument` naming what to fix."""
        pipeline = self._ready()
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
        if spec.mask is not None:
            raise InvalidArgument(
                f"mask: {pipeline.loaded.class_name} does not inpaint; send the edit without a mask"
            )
        if not spec.images:
            raise InvalidArgument("images: at least one input image is required")
        if len(spec.images) > pipeline.max_input_images:
            raise InvalidArgument(
                f"images: {len(spec.images)} given; {pipeline.loaded.class_name} takes at most "
                f"{pipeline.max_input_images}"
            )
        if bool(spec.width) != bool(spec.height):
            raise InvalidArgument("width and height: give both, or neither (sized from images[0])")
        images = await asyncio.to_thread(self._decode_all, spec.images)
        if spec.width:
            check_size(self.settings, spec.width, spec.height)
            return EditJob(sampling, images, spec.width, spec.height)
        width, height = default_size(images[0])
        try:
            check_size(self.settings, width, height)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"{exc.message} (the default size for images[0], {images[0].width}x"
                f"{images[0].height}); send width and height"
            ) from exc
        return EditJob(sampling, images, width, height)

    def _decode_all(self, sources: list[ImageSource]) -> list[Image.Image]:
        decoded = []
        for index, source in enumerate(sources):
            name = f"images[{index}]"
            if isinstance(source, str):
                raise InvalidArgument(
                    f"{name}: model servers take image bytes, not URLs; fetch it first "
                    "(the gateway and Storage.Fetch do)"
                )
            decoded.append(decode_image(source, name, self.settings.max_input_pixels))
        return decoded

    async def edit(self, spec: EditSpec) -> GenerationOutput:
        pipeline = self._ready()
        job = await self.check(spec)
        return await self.runner.run(lambda step: pipeline.run(job, step), job.sampling)

    async def edit_stream(
        self, spec: EditSpec
    ) -> AsyncIterator[Progress | PartialOutput | GenerationOutput]:
        """Queue position, each step, the previews asked for, then the output."""
        pipeline = self._ready()
        job = await self.check(spec)
        async for event in self.runner.stream(lambda step: pipeline.run(job, step), job.sampling):
            yield event

    async def close(self) -> None:
        await self.runner.close()
