"""Qwen-Image 2.1 on the Qwen-Image server: `QwenImage21Pipeline`, which generates from text and,
given an image, edits it (one model, one call; the image conditions the text encoder and the
transformer, there is no strength or mask).

A server pointed at a 2.1 checkpoint (`QWEN_IMAGE_LOCATION`; its `model_index.json` names the
class) runs `Image21Pipeline` instead of the 1.x one (`load_family`). The request knobs differ
from 1.x, and `check` refuses those the family does not take with messages naming it:
`guidance_scale` (2.1 has no guidance embedding: use `true_cfg_scale` with a negative prompt),
`mask` (no 2.1 inpainting pipeline), `strength` (an edit is not img2img), and sizes that are not
multiples of 32 (its VAE compresses 16x and the transformer packs 2x2 latents per image token).

Two knobs the family adds are set from the request: an edit resizes its input to the output's
area (`output_resolution`, whose default of 1024 would resize every input to about 1 megapixel,
see `shared/notes/models.md`), and a checkpoint that fixes its own sigmas (`sample_sigmas`, whose
length is its step count) keeps them unless the request asks for another step count, which then
gets the pipeline's own evenly spaced grid of that many sigmas.
"""

from __future__ import annotations

import math
from typing import Any

from services.common.errors import InvalidArgument
from services.modelserver.limits import guidance_arguments
from services.modelserver.loader import LoadedPipeline, read_model_index
from services.modelserver.pipeline import BatchKey, ModelPipeline
from services.modelserver.settings import ModelServerSettings
from services.modelserver.tokens import TokenCounter
from services.qwen_image.pipeline import TextToImageJob, TextToImagePipeline

PIPELINE_CLASSES = ("QwenImage21Pipeline",)
MODEL = "Qwen-Image 2.1 (QwenImage21Pipeline)"
SIZE_MULTIPLE = 32


class Image21Pipeline(ModelPipeline[TextToImageJob]):
    pipeline_classes = PIPELINE_CLASSES

    def __init__(self, loaded: LoadedPipeline, settings: ModelServerSettings) -> None:
        super().__init__(loaded, settings)
        # 2.1's tokenizer lives inside its Qwen3-VL processor (there is no `pipe.tokenizer`).
        processor = getattr(loaded.pipe, "processor", None)
        self.tokens = TokenCounter(getattr(processor, "tokenizer", None))

    def batch_key(self, job: TextToImageJob) -> BatchKey | None:
        return self.shared_key(job) if job.image is None else None

    def sigmas(self, steps: int) -> list[float] | None:
        """None keeps the checkpoint's `sample_sigmas` (or, without them, `steps` evenly);
        another step count than theirs gets `steps` evenly spaced sigmas, as the pipeline
        spaces them itself."""
        fixed = self.loaded.pipe.config.get("sample_sigmas")
        if not fixed or len(fixed) == steps:
            return None
        return [1.0 - i * (1.0 - 1.0 / steps) / max(steps - 1, 1) for i in range(steps)]

    def call_arguments(self, jobs: list[TextToImageJob]) -> dict[str, Any]:
        head = jobs[0]
        common = {"sigmas": self.sigmas(head.sampling.steps)}
        if head.image is not None:
            (job,) = jobs
            side = round(math.sqrt(job.width * job.height) / SIZE_MULTIPLE) * SIZE_MULTIPLE
            return {
                **self.sampling_arguments(job),
                **common,
                "image": job.image,
                "output_resolution": max(SIZE_MULTIPLE, side),
            }
        per_image = [job for job in jobs for _ in range(job.sampling.num_images)]
        negative = head.sampling.negative_prompt is not None
        return {
            "prompt": [job.sampling.prompt for job in per_image],
            "negative_prompt": [job.sampling.negative_prompt for job in per_image]
            if negative
            else None,
            "width": head.width,
            "height": head.height,
            "num_inference_steps": head.sampling.steps,
            "num_images_per_prompt": 1,
            "generator": [g for job in jobs for g in self.generators(job.sampling)],
            **common,
            **guidance_arguments(head.sampling),
        }


def load_family(settings: ModelServerSettings) -> ModelPipeline[TextToImageJob]:
    """The pipeline the checkpoint's class calls for: 2.1's, or the 1.x one (which refuses any
    other class with the list of those it runs)."""
    class_name = settings.pipeline_class or str(
        read_model_index(settings.location).get("_class_name", "")
    )
    if class_name in PIPELINE_CLASSES:
        return Image21Pipeline.load(settings)
    return TextToImagePipeline.load(settings)


def is_21(pipeline: ModelPipeline[TextToImageJob] | None) -> bool:
    return isinstance(pipeline, Image21Pipeline)


def refuse_knobs(guidance_scale: float | None, mask: object | None, strength: float | None) -> None:
    """`InvalidArgument` naming 2.1 for a knob it does not take."""
    if guidance_scale is not None:
        raise InvalidArgument(
            f"guidance_scale: {MODEL} takes no guidance_scale; "
            "use true_cfg_scale with a negative_prompt"
        )
    if mask is not None:
        raise InvalidArgument(
            f"mask: {MODEL} does not inpaint; send the image without a mask to edit it"
        )
    if strength is not None:
        raise InvalidArgument(
            f"strength: {MODEL} edits the image it reads, with no strength; leave strength out"
        )


def check_size_21(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value % SIZE_MULTIPLE:
            lower = max(SIZE_MULTIPLE, value // SIZE_MULTIPLE * SIZE_MULTIPLE)
            raise InvalidArgument(
                f"{name}: {value} is not a multiple of {SIZE_MULTIPLE} for {MODEL}; "
                f"use {lower} or {lower + SIZE_MULTIPLE}"
            )


def size_from_image(width: int, height: int) -> tuple[int, int]:
    """An input image's size rounded to the nearest multiple of 32 (at least 32)."""
    return tuple(  # type: ignore[return-value]
        max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (width, height)
    )
