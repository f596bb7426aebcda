"""The diffusers edit pipelines behind the Qwen-Image-Edit server: load one, run one job on it.

`QwenImageEditPipeline` takes one input image, `QwenImageEditPlusPipeline` several; which one is
loaded comes from the checkpoint's `model_index.json` or the `pipeline_class` setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from services.modelserver.jobs import StepFn
from services.modelserver.limits import Sampling, guidance_arguments
from services.modelserver.loader import LoadedPipeline, load_pipeline
from services.modelserver.previews import job_callback
from services.qwen_edit.settings import QwenEditSettings

EDIT = "QwenImageEditPipeline"
EDIT_PLUS = "QwenImageEditPlusPipeline"
PIPELINE_CLASSES = (EDIT, EDIT_PLUS)
# The edit pipelines' own default output area (about one megapixel), on a 32-pixel grid.
DEFAULT_AREA = 1024 * 1024


@dataclass(frozen=True)
class EditJob:
    sampling: Sampling
    images: list[Image.Image]  # RGB
    width: int
    height: int


def default_size(image: Image.Image) -> tuple[int, int]:
    """About one megapixel with the image's aspect ratio, as the edit pipelines choose."""
    ratio = image.width / image.height
    width = math.sqrt(DEFAULT_AREA * ratio)
    return round(width / 32) * 32, round(width / ratio / 32) * 32


class EditPipeline:
    def __init__(self, loaded: LoadedPipeline, max_input_images: int) -> None:
        self.loaded = loaded
        self.max_input_images = 1 if loaded.class_name == EDIT else max_input_images

    @classmethod
    def load(cls, settings: QwenEditSettings) -> EditPipeline:
        """Loads `settings.location` (blocking; raises `PipelineLoadError` naming it)."""
        loaded = load_pipeline(
            settings.location,
            pipeline_class=settings.pipeline_class or None,
            allowed_classes=PIPELINE_CLASSES,
            device=settings.device or None,
        )
        return cls(loaded, settings.max_input_images)

    def arguments(self, job: EditJob) -> dict[str, Any]:
        """The `pipe(...)` keyword arguments for a job (the benchmark uses them too); image i of
        the output gets its own generator seeded `seed + i`."""
        sampling = job.sampling
        kwargs: dict[str, Any] = {
            "image": job.images if self.loaded.class_name == EDIT_PLUS else job.images[0],
            "prompt": sampling.prompt,
            "negative_prompt": sampling.negative_prompt,
            "width": job.width,
            "height": job.height,
            "num_inference_steps": sampling.steps,
            "num_images_per_prompt": sampling.num_images,
            "generator": [
                torch.Generator(self.loaded.device).manual_seed(sampling.seed + i)
                for i in range(sampling.num_images)
            ],
        }
        kwargs.update(guidance_arguments(sampling))
        return kwargs

    def run(self, job: EditJob, step: StepFn) -> list[Any]:
        """Runs the pipeline (blocking) and returns PIL images; `step(i)` after each step may
        raise to stop it, and gets the previews `sampling.partial_images` asks for."""
        callback = job_callback(step, job.sampling, job.width, job.height)
        result = self.loaded.pipe(**self.arguments(job), callback_on_step_end=callback)
        return list(result.images)
