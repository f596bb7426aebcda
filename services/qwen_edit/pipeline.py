"""The diffusers edit pipelines behind the Qwen-Image-Edit server.

`QwenImageEditPipeline` takes one input image, `QwenImageEditPlusPipeline` several; which one is
loaded comes from the checkpoint's `model_index.json` or the `pipeline_class` setting.

Edits run one job per call (`batch_key` stays None): in diffusers 0.42.1
`QwenImageEditPlusPipeline` refuses more than one prompt per call, and `QwenImageEditPipeline`
takes one input image for every prompt of a call (its processor then wants one image per
prompt), so two requests with their own input images cannot share a call. A job's `n` images
still come from one call.

An edit with a mask runs `QwenImageEditInpaintPipeline`, derived at load with `from_pipe` over
the loaded pipeline's modules (no second copy of the weights; see `modelserver.inpainting`), on
`images[0]`. That pipeline makes its picture at the input's condition size (about one megapixel,
whatever `width` / `height` say), so a job's `width` x `height` is that size and `resize_to` is
the size asked for (or the input's): the images are resized to it after the call (Lanczos), and
are left as they are when the two agree. Edit-Plus with several input images and a mask runs
the Edit-Plus call itself, masked step by step on images[0] (`latent_mask.py`), at the size asked
for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from services.modelserver.batching import BatchStepFn
from services.modelserver.inpainting import derive
from services.modelserver.loader import LoadedPipeline
from services.modelserver.pipeline import ModelPipeline, PipelineJob
from services.modelserver.previews import batch_callback
from services.modelserver.tokens import image_tokens
from services.qwen_edit.latent_mask import LatentMask
from services.qwen_edit.settings import QwenEditSettings

EDIT = "QwenImageEditPipeline"
EDIT_PLUS = "QwenImageEditPlusPipeline"
PIPELINE_CLASSES = (EDIT, EDIT_PLUS)
INPAINT = "QwenImageEditInpaintPipeline"
# The area the edit pipelines encode each input image at (about one megapixel, on a 32-pixel
# grid), whatever the output size.
CONDITION_AREA = 1024 * 1024


@dataclass(frozen=True)
class EditJob(PipelineJob):
    images: tuple[Image.Image, ...] = ()  # RGB
    mask: Image.Image | None = None  # "L", white = change, the size of images[0]
    strength: float = 1.0
    schedule_steps: int = 0  # with `mask`: the steps asked for; sampling.steps = those run
    resize_to: tuple[int, int] | None = None  # with `mask`: the size the caller gets


def condition_size(image: Image.Image) -> tuple[int, int]:
    """About one megapixel with the image's aspect ratio: the size the edit pipelines resize an
    input image to before encoding it (diffusers' `calculate_dimensions`)."""
    ratio = image.width / image.height
    width = math.sqrt(CONDITION_AREA * ratio)
    return round(width / 32) * 32, round(width / ratio / 32) * 32


def default_size(image: Image.Image, max_side: int) -> tuple[int, int]:
    """An edit without a size keeps the input image's (issue 15), each side rounded to a multiple
    of 16; a side over `max_side` scales both down, aspect kept."""
    scale = min(1.0, max_side / max(image.width, image.height))
    return tuple(  # type: ignore[return-value]
        max(16, min(max_side // 16 * 16, round(side * scale / 16) * 16)) for side in image.size
    )


class EditPipeline(ModelPipeline[EditJob]):
    pipeline_classes = PIPELINE_CLASSES

    def __init__(self, loaded: LoadedPipeline, settings: QwenEditSettings) -> None:
        super().__init__(loaded, settings)
        self.max_input_images = 1 if loaded.class_name == EDIT else settings.max_input_images
        self.inpaint = derive(loaded.pipe, INPAINT)

    def pipe_for(self, job: EditJob) -> Any:
        return self.inpaint if masked_alone(job) else self.loaded.pipe

    def input_image_tokens(self, job: EditJob) -> int:
        """Each input image joins the transformer's sequence as latents at its condition size."""
        return sum(image_tokens(*condition_size(image)) for image in job.images)

    def call_arguments(self, jobs: list[EditJob]) -> dict[str, Any]:
        (job,) = jobs
        images = list(job.images)
        if masked_alone(job):
            return {
                **self.sampling_arguments(job),
                "image": images[0],
                "mask_image": job.mask,
                "strength": job.strength,
                "num_inference_steps": job.schedule_steps,
            }
        return {
            "image": images if self.loaded.class_name == EDIT_PLUS else images[0],
            **self.sampling_arguments(job),
        }

    def call(self, jobs: list[EditJob], step: BatchStepFn) -> list[list[Any]]:
        if jobs[0].mask is not None and not masked_alone(jobs[0]):
            return [self._masked_plus(jobs[0], step)]
        made = super().call(jobs, step)
        return [
            [image.resize(job.resize_to, Image.Resampling.LANCZOS) for image in images]
            if job.resize_to and job.resize_to != images[0].size
            else images
            for job, images in zip(jobs, made, strict=True)
        ]

    def _masked_plus(self, job: EditJob, step: BatchStepFn) -> list[Any]:
        """Edit-Plus over every input image, the kept area of images[0] put back each step."""
        assert job.mask is not None
        pipe = self.loaded.pipe
        generators = self.generators(job.sampling)
        blend = LatentMask(pipe, job.images[0], job.mask, job.width, job.height, generators)
        report = batch_callback(step, [job])

        def on_step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            tensors["latents"] = blend.blend(tensors["latents"], index)
            report(pipe, index, timestep, tensors)
            return {"latents": tensors["latents"]}

        arguments = {
            **self.sampling_arguments(job),
            "image": list(job.images),
            "generator": generators,
            "latents": blend.noise,
        }
        return list(pipe(**arguments, callback_on_step_end=on_step_end).images)


def masked_alone(job: EditJob) -> bool:
    """A masked job of one input image: `QwenImageEditInpaintPipeline` runs it."""
    return job.mask is not None and len(job.images) == 1
