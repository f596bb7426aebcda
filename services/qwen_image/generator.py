"""Text to image (and, with an input image, img2img or inpainting) without gRPC: a request's
checks; the rest is `ModelGenerator`'s.

`Generator` refuses bad requests with `InvalidArgument` before they take a queue slot: a mask
without an image, a mask of another size than the image, `strength` outside (0, 1]; control
inputs on img2img (diffusers has no ControlNet img2img pipeline), with a strength below 1 (the
ControlNet inpainting pipeline redraws from noise), or on Qwen-Image 2.1 (its ControlNet
pipelines are 1.x's).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from PIL import Image

from services.common.errors import InvalidArgument
from services.modelserver.controlnets import CONTROL, INPAINTING, ControlCall, ControlRef
from services.modelserver.generator import ModelGenerator, SamplingSpec
from services.modelserver.images import decode_image
from services.modelserver.inpainting import (
    IMG2IMG_STRENGTH,
    INPAINT_STRENGTH,
    check_mask_size,
    check_strength,
    read_mask,
    round_size,
    steps_run,
)
from services.modelserver.limits import check_size
from services.qwen_image import family21
from services.qwen_image.pipeline import TextToImageJob, TextToImagePipeline
from services.qwen_image.settings import QwenImageSettings

ImageSource = bytes | str  # encoded bytes, or a URL (which model servers do not fetch)


@dataclass(frozen=True)
class GenerateSpec(SamplingSpec):
    """A request as the caller sent it: 0 and None mean "server default"."""

    image: ImageSource | None = None  # img2img (or inpainting, with `mask`)
    mask: ImageSource | None = None
    strength: float | None = None
    controls: tuple[ControlRef, ...] = ()  # ControlNet inputs (`modelserver.controlnets`)
    control_guidance_start: float | None = None
    control_guidance_end: float | None = None


class Generator(ModelGenerator[QwenImageSettings, GenerateSpec, TextToImageJob]):
    name = "qwen_image"
    pipeline_type = TextToImagePipeline

    def check(self, spec: GenerateSpec) -> TextToImageJob:
        """The text-to-image job for a request, or `InvalidArgument` naming what to fix."""
        sampling = self.sampling(spec)
        width = spec.width or self.settings.default_width
        height = spec.height or self.settings.default_height
        check_size(self.settings, width, height)
        return TextToImageJob(sampling, width, height)

    async def load(self) -> None:
        # The checkpoint's class picks the pipeline: Qwen-Image 1.x's or 2.1's (`family21`).
        self.pipeline = await asyncio.to_thread(family21.load_family, self.settings)

    async def prepare(self, spec: GenerateSpec) -> TextToImageJob:
        job = await self._prepare(spec)
        if not spec.controls:
            for name in ("control_guidance_start", "control_guidance_end"):
                if getattr(spec, name) is not None:
                    raise InvalidArgument(f"{name}: applies to control inputs; send controls too")
            return job
        return dataclasses.replace(job, control=await self._control(spec, job))

    async def _control(self, spec: GenerateSpec, job: TextToImageJob) -> ControlCall:
        pipeline = self.ready()
        assert isinstance(pipeline, TextToImagePipeline)
        if spec.image is not None and spec.mask is None:
            raise InvalidArgument(
                "controls: apply to text to image or to a masked edit; diffusers 0.42 has no "
                "ControlNet img2img pipeline (send a mask, or no image)"
            )
        if spec.mask is not None and job.strength != 1.0:
            raise InvalidArgument(
                f"strength: {job.strength:.4g} with controls; the ControlNet inpainting pipeline "
                "redraws the masked area from noise (strength 1), leave strength out"
            )
        max_pixels = self.settings.max_input_pixels
        return await asyncio.to_thread(
            pipeline.controlnets.check,
            spec.controls,
            spec.control_guidance_start,
            spec.control_guidance_end,
            INPAINTING if spec.mask is not None else CONTROL,
            lambda data, name: decode_image(data, name, max_pixels),
        )

    async def _prepare(self, spec: GenerateSpec) -> TextToImageJob:
        if family21.is_21(self.pipeline):
            if spec.controls:
                raise InvalidArgument(
                    f"controls: {getattr(self.pipeline, 'model', 'Qwen-Image 2.1')} is a Qwen-Image "
                    "2.1 model; diffusers "
                    "0.42's Qwen-Image ControlNet pipelines are for Qwen-Image 1.x"
                )
            return await self.prepare_21(spec)
        if spec.image is None:
            if spec.mask is not None:
                raise InvalidArgument("mask: needs the image it applies to; send image too")
            if spec.strength is not None:
                raise InvalidArgument("strength: applies to an input image; send image too")
            return self.check(spec)
        sampling = self.sampling(spec)
        default = INPAINT_STRENGTH if spec.mask is not None else IMG2IMG_STRENGTH
        strength = check_strength(spec.strength, default, sampling.steps)
        if bool(spec.width) != bool(spec.height):
            raise InvalidArgument("width and height: give both, or neither (sized from image)")
        image, mask = await asyncio.to_thread(self._decode, spec.image, spec.mask)
        width, height = (spec.width, spec.height) if spec.width else round_size(image)
        try:
            check_size(self.settings, width, height)
        except InvalidArgument as exc:
            if spec.width:
                raise
            raise InvalidArgument(
                f"{exc.message} (the size of image, {image.width}x{image.height}); "
                "send width and height"
            ) from exc
        # The pipelines run only the last `strength` share of the schedule: progress counts those.
        run = dataclasses.replace(sampling, steps=steps_run(sampling.steps, strength))
        return TextToImageJob(run, width, height, image, mask, strength, sampling.steps)

    async def prepare_21(self, spec: GenerateSpec) -> TextToImageJob:
        """Qwen-Image 2.1: text to image, or with `image` an edit (no mask, no strength)."""
        pipeline = self.pipeline
        assert isinstance(pipeline, family21.Image21Pipeline)
        family21.refuse_knobs(spec.guidance_scale, spec.mask, spec.strength, pipeline.model)
        sampling = self.sampling(spec)
        if isinstance(pipeline, family21.Turbo21Pipeline):
            family21.refuse_turbo_knobs(
                spec.negative_prompt, spec.true_cfg_scale, spec.partial_images
            )
            if not spec.num_inference_steps:  # Turbo's few steps, not the server's default
                sampling = dataclasses.replace(sampling, steps=pipeline.default_steps())
        if bool(spec.width) != bool(spec.height):
            raise InvalidArgument("width and height: give both, or neither")
        image = None
        width = spec.width or self.settings.default_width
        height = spec.height or self.settings.default_height
        if spec.image is not None:
            image, _ = await asyncio.to_thread(self._decode, spec.image, None)
            if not spec.width:
                width, height = family21.size_from_image(image.width, image.height)
        check_size(self.settings, width, height)
        family21.check_size_21(width, height, pipeline.model)
        return TextToImageJob(sampling, width, height, image)

    def _decode(
        self, image: ImageSource, mask: ImageSource | None
    ) -> tuple[Image.Image, Image.Image | None]:
        for name, source in (("image", image), ("mask", mask)):
            if isinstance(source, str):
                raise InvalidArgument(
                    f"{name}: model servers take image bytes, not URLs; fetch it first "
                    "(the gateway and Storage.Fetch do)"
                )
        assert isinstance(image, bytes)
        decoded = decode_image(image, "image", self.settings.max_input_pixels)
        if mask is None:
            return decoded, None
        assert isinstance(mask, bytes)
        read = read_mask(mask, self.settings.max_input_pixels)
        check_mask_size(read, decoded, "image")
        return decoded, read
