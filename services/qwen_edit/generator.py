"""Image editing without gRPC: a request's checks and its input images; the rest is
`ModelGenerator`'s.

Input images are decoded (in a thread) and checked before the request takes a queue slot: an
undecodable image, a URL instead of bytes, or more images than the loaded pipeline takes is an
`InvalidArgument`; so are a mask of another size than images[0], and `strength` outside (0, 1],
without a mask, or other than 1 with a mask beside several input images (Edit-Plus redraws the
masked area from noise).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from PIL import Image

from services.common.errors import InvalidArgument
from services.modelserver.generator import ModelGenerator, SamplingSpec
from services.modelserver.images import decode_image
from services.modelserver.inpainting import (
    INPAINT_STRENGTH,
    check_mask_size,
    check_strength,
    read_mask,
    steps_run,
)
from services.modelserver.limits import Sampling, check_size
from services.qwen_edit.pipeline import EditJob, EditPipeline, condition_size, default_size
from services.qwen_edit.settings import QwenEditSettings

ImageSource = bytes | str  # encoded bytes, or a URL (which model servers do not fetch)


@dataclass(frozen=True)
class EditSpec(SamplingSpec):
    """An edit request as the caller sent it: 0 and None mean "server default"."""

    images: list[ImageSource] = field(default_factory=list)
    mask: ImageSource | None = None  # applies to images[0]
    strength: float | None = None  # with a mask only


class EditGenerator(ModelGenerator[QwenEditSettings, EditSpec, EditJob]):
    name = "qwen_edit"
    pipeline_type = EditPipeline

    async def prepare(self, spec: EditSpec) -> EditJob:
        """The job for a request, or `InvalidArgument` naming what to fix."""
        pipeline = self.ready()
        assert isinstance(pipeline, EditPipeline)
        sampling = self.sampling(spec)
        if spec.mask is None and spec.strength is not None:
            raise InvalidArgument(
                "strength: applies to an edit with a mask; send a mask, or leave strength out"
            )
        if not spec.images:
            raise InvalidArgument("images: at least one input image is required")
        if len(spec.images) > pipeline.max_input_images:
            raise InvalidArgument(
                f"images: {len(spec.images)} given; {pipeline.loaded.class_name} takes at most "
                f"{pipeline.max_input_images}"
            )
        if spec.mask is not None and len(spec.images) > 1 and spec.strength not in (None, 1.0):
            raise InvalidArgument(
                f"strength: {spec.strength:.4g} with several input images; Edit-Plus redraws the "
                "masked area of images[0] from noise (strength 1), so leave strength out"
            )
        if bool(spec.width) != bool(spec.height):
            raise InvalidArgument("width and height: give both, or neither (sized from images[0])")
        images = tuple(await asyncio.to_thread(self._decode_all, spec.images))
        if spec.mask is not None:
            return await self._masked(spec, sampling, images)
        if spec.width:
            check_size(self.settings, spec.width, spec.height)
            return EditJob(sampling, spec.width, spec.height, images)
        width, height = default_size(images[0], self.settings.max_size)
        try:
            check_size(self.settings, width, height)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"{exc.message} (the default size for images[0], {images[0].width}x"
                f"{images[0].height}); send width and height"
            ) from exc
        return EditJob(sampling, width, height, images)

    async def _masked(
        self, spec: EditSpec, sampling: Sampling, images: tuple[Image.Image, ...]
    ) -> EditJob:
        """An inpainting job: the pipeline works at images[0]'s condition size, the caller gets
        the size asked for (or the input's)."""
        assert spec.mask is not None
        strength = check_strength(spec.strength, INPAINT_STRENGTH, sampling.steps)
        mask = await asyncio.to_thread(self._decode_mask, spec.mask, images[0])
        if spec.width:
            check_size(self.settings, spec.width, spec.height)
            wanted = (spec.width, spec.height)
        else:
            wanted = default_size(images[0], self.settings.max_size)
        if len(images) > 1:  # Edit-Plus, masked step by step at the size asked for
            mask = mask.resize(wanted, Image.Resampling.NEAREST)
            return EditJob(sampling, *wanted, images, mask, 1.0, sampling.steps)
        width, height = condition_size(images[0])
        run = dataclasses.replace(sampling, steps=steps_run(sampling.steps, strength))
        return EditJob(run, width, height, images, mask, strength, sampling.steps, resize_to=wanted)

    def _decode_mask(self, source: ImageSource, image: Image.Image) -> Image.Image:
        if isinstance(source, str):
            raise InvalidArgument(
                "mask: model servers take image bytes, not URLs; fetch it first "
                "(the gateway and Storage.Fetch do)"
            )
        mask = read_mask(source, self.settings.max_input_pixels)
        check_mask_size(mask, image, "images[0]")
        return mask

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
