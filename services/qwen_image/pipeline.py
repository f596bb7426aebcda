"""The diffusers `QwenImagePipeline` behind the Qwen-Image server: load it, run one job on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from services.modelserver.jobs import StepFn
from services.modelserver.limits import Sampling, guidance_arguments
from services.modelserver.loader import LoadedPipeline, load_pipeline
from services.modelserver.previews import job_callback
from services.qwen_image.settings import QwenImageSettings

PIPELINE_CLASSES = ("QwenImagePipeline",)


@dataclass(frozen=True)
class TextToImageJob:
    sampling: Sampling
    width: int
    height: int


class TextToImagePipeline:
    def __init__(self, loaded: LoadedPipeline) -> None:
        self.loaded = loaded

    @classmethod
    def load(cls, settings: QwenImageSettings) -> TextToImagePipeline:
        """Loads `settings.location` (blocking; raises `PipelineLoadError` naming it)."""
        return cls(
            load_pipeline(
                settings.location,
                pipeline_class=settings.pipeline_class or None,
                allowed_classes=PIPELINE_CLASSES,
                device=settings.device or None,
            )
        )

    def arguments(self, job: TextToImageJob) -> dict[str, Any]:
        """The `pipe(...)` keyword arguments for a job (the benchmark calls the pipeline with
        these too). Image i gets its own generator seeded `seed + i`, so any image of a batch can
        be made again alone."""
        sampling = job.sampling
        kwargs: dict[str, Any] = {
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

    def run(self, job: TextToImageJob, step: StepFn) -> list[Any]:
        """Runs the pipeline (blocking) and returns PIL images; `step(i)` after each step may
        raise to stop it, and gets the previews `sampling.partial_images` asks for."""
        callback = job_callback(step, job.sampling, job.width, job.height)
        result = self.loaded.pipe(**self.arguments(job), callback_on_step_end=callback)
        return list(result.images)
