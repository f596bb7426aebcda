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

What the server core does around a call holds for 2.1 as for 1.x: `QwenImage21Pipeline` takes
`callback_on_step_end` (progress, previews decoded as its own last lines decode, and a cancel that
stops the run at the next step) and is a `QwenImageLoraLoaderMixin` (LoRA adapters per call).

2.1 Turbo (`Turbo21Pipeline`) is the modular `QwenImage21TurboModularPipeline` over the same
components: its own few steps by default, no guidance, LoRA as for 2.1 (the modular pipeline is a
`QwenImageLoraLoaderMixin` too), and no step callback (see its class).
"""

from __future__ import annotations

import math
from typing import Any

from services.common.errors import InvalidArgument
from services.modelserver.batching import BatchStepFn
from services.modelserver.loader import LoadedPipeline, PipelineLoadError, read_model_index
from services.modelserver.pipeline import BatchKey, ModelPipeline
from services.modelserver.settings import ModelServerSettings
from services.modelserver.tokens import TokenCounter
from services.qwen_image.pipeline import (
    TextToImageJob,
    TextToImagePipeline,
    text_to_image_arguments,
)
from services.qwen_image.settings import QwenImageSettings

PIPELINE_CLASSES = ("QwenImage21Pipeline",)
TURBO_CLASSES = ("QwenImage21TurboModularPipeline",)
MODEL = "Qwen-Image 2.1 (QwenImage21Pipeline)"
TURBO = "Qwen-Image 2.1 Turbo (QwenImage21TurboModularPipeline)"
TURBO_STEPS = 8  # the real Turbo grid's length, for a checkpoint that ships none
SIZE_MULTIPLE = 32


class Image21Pipeline(ModelPipeline[TextToImageJob]):
    pipeline_classes = PIPELINE_CLASSES
    model = MODEL  # as messages name it

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
        return {**text_to_image_arguments(self, jobs), **common}


class Turbo21Pipeline(Image21Pipeline):
    """2.1 Turbo as diffusers ships it, a modular pipeline (`QwenImage21TurboModularPipeline`):
    the same arguments less guidance, the images asked for with `output="images"`, and no step
    callback, so a call reports its steps when it ends and cannot stop half-way (a cancel before
    the start still drops the job)."""

    pipeline_classes = TURBO_CLASSES
    model = TURBO

    def default_steps(self) -> int:
        """Turbo's own step count: its `sample_sigmas`' length."""
        fixed = self.loaded.pipe.config.get("sample_sigmas")
        return len(fixed) if fixed else TURBO_STEPS

    def call_arguments(self, jobs: list[TextToImageJob]) -> dict[str, Any]:
        arguments = super().call_arguments(jobs)
        for name in ("negative_prompt", "true_cfg_scale", "guidance_scale"):
            arguments.pop(name, None)
        return {**arguments, "output": "images"}

    def call(self, jobs: list[TextToImageJob], step: BatchStepFn) -> list[list[Any]]:
        self.adapters.activate(jobs[0].sampling.loras)
        images = list(self.loaded.pipe(**self.call_arguments(jobs)))
        step(jobs[0].sampling.steps, [None] * len(jobs))
        split, start = [], 0
        for job in jobs:
            split.append(images[start : start + job.sampling.num_images])
            start += job.sampling.num_images
        return split


def load_family(settings: ModelServerSettings) -> ModelPipeline[TextToImageJob]:
    """The pipeline the checkpoint's class calls for: 2.1's, or the 1.x one (which refuses any
    other class with the list of those it runs)."""
    class_name = settings.pipeline_class or str(
        read_model_index(settings.location).get("_class_name", "")
    )
    family_21 = class_name in PIPELINE_CLASSES or class_name in TURBO_CLASSES
    if family_21 and isinstance(settings, QwenImageSettings) and settings.controlnet_location:
        # diffusers 0.42's Qwen-Image ControlNet pipelines take the 1.x transformer only: a
        # setting that would be ignored stops the server instead.
        raise PipelineLoadError(
            f"QWEN_IMAGE_CONTROLNET_LOCATION is set but {settings.location} is a {class_name}: "
            "the Qwen-Image ControlNets run on Qwen-Image 1.x only; unset it for this server"
        )
    if class_name in PIPELINE_CLASSES:
        return Image21Pipeline.load(settings)
    if class_name in TURBO_CLASSES:
        return Turbo21Pipeline.load(settings)
    return TextToImagePipeline.load(settings)


def is_21(pipeline: ModelPipeline[TextToImageJob] | None) -> bool:
    return isinstance(pipeline, Image21Pipeline)


def refuse_knobs(
    guidance_scale: float | None,
    mask: object | None,
    strength: float | None,
    model: str = MODEL,
) -> None:
    """`InvalidArgument` naming the model for a knob 2.1 does not take."""
    if guidance_scale is not None:
        raise InvalidArgument(
            f"guidance_scale: {model} takes no guidance_scale; "
            "use true_cfg_scale with a negative_prompt"
        )
    if mask is not None:
        raise InvalidArgument(
            f"mask: {model} does not inpaint; send the image without a mask to edit it"
        )
    if strength is not None:
        raise InvalidArgument(
            f"strength: {model} edits the image it reads, with no strength; leave strength out"
        )


def refuse_turbo_knobs(
    negative_prompt: str | None, true_cfg_scale: float | None, partial_images: int
) -> None:
    """What Turbo's modular pipeline has no way to do, refused naming it."""
    if negative_prompt is not None or true_cfg_scale is not None:
        field = "negative_prompt" if negative_prompt is not None else "true_cfg_scale"
        raise InvalidArgument(
            f"{field}: {TURBO} samples without guidance (no true CFG); leave {field} out"
        )
    if partial_images:
        raise InvalidArgument(
            f"partial_images: {TURBO} runs as a modular pipeline, which has no step callback: "
            "no previews (progress arrives when the images do); send 0"
        )


def check_size_21(width: int, height: int, model: str = MODEL) -> None:
    for name, value in (("width", width), ("height", height)):
        if value % SIZE_MULTIPLE:
            lower = max(SIZE_MULTIPLE, value // SIZE_MULTIPLE * SIZE_MULTIPLE)
            raise InvalidArgument(
                f"{name}: {value} is not a multiple of {SIZE_MULTIPLE} for {model}; "
                f"use {lower} or {lower + SIZE_MULTIPLE}"
            )


def size_from_image(width: int, height: int) -> tuple[int, int]:
    """An input image's size rounded to the nearest multiple of 32 (at least 32)."""
    return tuple(  # type: ignore[return-value]
        max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (width, height)
    )
