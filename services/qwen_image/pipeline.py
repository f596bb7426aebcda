"""The diffusers `QwenImagePipeline` behind the Qwen-Image server, and its inpaint and img2img
variants over the same weights (`QwenImageInpaintPipeline`, `QwenImageImg2ImgPipeline`, built
with `from_pipe` at load: only new wrapper objects, see `modelserver.inpainting`).

Text-to-image jobs of the same size, steps and guidance share one call: `QwenImagePipeline`
takes a list of prompts, a list of negative prompts (one per prompt; true CFG is on or off for the
whole call, so whether there is a negative prompt is part of the key) and one generator per
image. Jobs with an input image run alone (`batch_key` None): every such job has its own image
and mask, and running them alone keeps them out of text-to-image calls whatever the key says.
Jobs with control inputs (`modelserver.controlnets`) run alone too, on the ControlNet pipeline
derived for their ControlNet: each carries its own control pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from services.modelserver.controlnets import ControlCall, ControlEntry, ControlNets, call_arguments
from services.modelserver.inpainting import derive
from services.modelserver.limits import guidance_arguments
from services.modelserver.loader import LoadedPipeline
from services.modelserver.pipeline import BatchKey, ModelPipeline, PipelineJob
from services.modelserver.settings import ModelServerSettings
from services.qwen_image.settings import QwenImageSettings

PIPELINE_CLASSES = ("QwenImagePipeline",)
INPAINT = "QwenImageInpaintPipeline"
IMG2IMG = "QwenImageImg2ImgPipeline"


@dataclass(frozen=True)
class TextToImageJob(PipelineJob):
    """A checked request: the sampling parameters and size; with `image`, an img2img job (and
    with `mask` too, an inpainting one) at `strength`."""

    image: Image.Image | None = None  # RGB, as sent (the pipelines resize it to the output's)
    mask: Image.Image | None = None  # "L", white = change, the image's size
    strength: float = 1.0
    schedule_steps: int = 0  # with `image`: the steps asked for; sampling.steps = those run
    control: ControlCall | None = None  # ControlNet inputs (text to image, or with a mask)


class TextToImagePipeline(ModelPipeline[TextToImageJob]):
    pipeline_classes = PIPELINE_CLASSES

    def __init__(self, loaded: LoadedPipeline, settings: ModelServerSettings) -> None:
        super().__init__(loaded, settings)
        self.variants = {name: derive(loaded.pipe, name) for name in (INPAINT, IMG2IMG)}
        locations = settings.controlnet_location if isinstance(settings, QwenImageSettings) else []
        self.controlnets = ControlNets(loaded, locations)

    def controlnet_entries(self) -> list[ControlEntry]:
        return self.controlnets.entries()

    def pipe_for(self, job: TextToImageJob) -> Any:
        if job.control is not None:
            return self.controlnets.pipe_for(job.control)
        if job.image is None:
            return self.loaded.pipe
        return self.variants[INPAINT if job.mask is not None else IMG2IMG]

    def batch_key(self, job: TextToImageJob) -> BatchKey | None:
        return self.shared_key(job) if job.image is None and job.control is None else None

    def call_arguments(self, jobs: list[TextToImageJob]) -> dict[str, Any]:
        """An img2img or inpainting job alone; a batch of text-to-image jobs as
        `text_to_image_arguments` says."""
        head = jobs[0]
        if head.control is not None:
            (job,) = jobs
            control = call_arguments(head.control, job.image, job.mask)
            return {**self.sampling_arguments(job), **control}
        if head.image is not None:
            (job,) = jobs
            extra: dict[str, Any] = {
                "image": job.image,
                "strength": job.strength,
                "num_inference_steps": job.schedule_steps,
            }
            if job.mask is not None:
                extra["mask_image"] = job.mask
            return {**self.sampling_arguments(job), **extra}
        return text_to_image_arguments(self, jobs)


def text_to_image_arguments(
    pipeline: ModelPipeline[TextToImageJob], jobs: list[TextToImageJob]
) -> dict[str, Any]:
    """A batched text-to-image call's arguments (1.x and 2.1 alike): one prompt (and negative
    prompt) per image, each job's own repeated `n` times; one generator per image, each job's own
    seeds; size, steps and guidance from the head job (the batch key keeps them equal)."""
    head = jobs[0]
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
        "generator": [g for job in jobs for g in pipeline.generators(job.sampling)],
        **guidance_arguments(head.sampling),
    }
