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
import io
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
from services.qwen_edit import layered
from services.qwen_edit.layered import LayeredKnobs
from services.qwen_edit.pipeline import EditJob, EditPipeline, condition_size, default_size
from services.qwen_edit.settings import QwenEditSettings

ImageSource = bytes | str  # encoded bytes, or a URL (which model servers do not fetch)


@dataclass(frozen=True)
class EditSpec(SamplingSpec):
    """An edit request as the caller sent it: 0 and None mean "server default"."""

    images: list[ImageSource] = field(default_factory=list)
    mask: ImageSource | None = None  # applies to images[0]
    strength: float | None = None  # with a mask only
    layered: LayeredKnobs = LayeredKnobs()  # a Layered checkpoint's fields (`layered.py`)


class EditGenerator(ModelGenerator[QwenEditSettings, EditSpec, EditJob]):
    name = "qwen_edit"
    pipeline_type = EditPipeline

    async def load(self) -> None:
        # The checkpoint's class picks the pipeline: an edit one, or Layered's (`layered.py`).
        self.pipeline = await asyncio.to_thread(layered.load_family, self.settings)

    async def prepare(self, spec: EditSpec) -> EditJob | layered.LayeredJob:  # type: ignore[override]
        """The job for a request, or `InvalidArgument` naming what to fix."""
        pipeline = self.ready()
        if isinstance(pipeline, layered.LayeredPipeline):
            return await self._layered(spec)
        assert isinstance(pipeline, EditPipeline)
        layered.refuse_on_edit_server(spec.layered, pipeline.loaded.class_name)
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

    async def _layered(self, spec: EditSpec) -> layered.LayeredJob:
        """A Layered job: its own knobs checked, images[0] read with its alpha."""
        # An empty prompt is Layered's "caption the image": checked as any text, run as "".
        sampling = self.sampling(dataclasses.replace(spec, prompt=spec.prompt or "caption"))
        sampling = dataclasses.replace(sampling, prompt=spec.prompt)
        count, resolution = layered.check_layered(
            self.settings,
            sampling,
            spec.layered,
            images=len(spec.images),
            mask=spec.mask is not None,
            strength=spec.strength,
            guidance_scale=spec.guidance_scale,
        )
        if bool(spec.width) != bool(spec.height):
            raise InvalidArgument("width and height: give both, or neither (the pipeline's size)")
        (image,) = await asyncio.to_thread(self._decode_all, spec.images, "RGBA")
        size = (spec.width, spec.height) if spec.width else None
        return layered.layered_job(
            self.settings, sampling, spec.layered, image, count, resolution, size
        )

    def _decode_mask(self, source: ImageSource, image: Image.Image) -> Image.Image:
        if isinstance(source, str):
            raise InvalidArgument(
                "mask: model servers take image bytes, not URLs; fetch it first "
                "(the gateway and Storage.Fetch do)"
            )
        mask = read_mask(source, self.settings.max_input_pixels)
        check_mask_size(mask, image, "images[0]")
        return mask

    def _decode_all(self, sources: list[ImageSource], mode: str = "RGB") -> list[Image.Image]:
        decoded = []
        for index, source in enumerate(sources):
            name = f"images[{index}]"
            if isinstance(source, str):
                raise InvalidArgument(
                    f"{name}: model servers take image bytes, not URLs; fetch it first "
                    "(the gateway and Storage.Fetch do)"
                )
            image = decode_image(source, name, self.settings.max_input_pixels)
            if mode != image.mode:  # decode_image gives RGB; Layered keeps the alpha
                with Image.open(io.BytesIO(source)) as full:
                    image = full.convert(mode)
            decoded.append(image)
        return decoded
