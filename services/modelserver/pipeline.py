"""The pipeline half both model servers share: load the diffusers pipeline the settings name, seed
one generator per image, run a job with its step callback, hand back PIL images.

A server's subclass names the diffusers classes it runs and adds what its `pipe(...)` call takes
beyond the sampling arguments (the edit server: the input images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch

from services.modelserver.jobs import StepFn
from services.modelserver.limits import Sampling, guidance_arguments
from services.modelserver.loader import LoadedPipeline, load_pipeline
from services.modelserver.previews import job_callback
from services.modelserver.settings import ModelServerSettings


@dataclass(frozen=True)
class PipelineJob:
    """A checked request: its sampling parameters and output size."""

    sampling: Sampling
    width: int
    height: int


J = TypeVar("J", bound=PipelineJob)


class ModelPipeline(Generic[J]):
    """One loaded diffusers pipeline and the way a server's jobs call it."""

    pipeline_classes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, loaded: LoadedPipeline, settings: ModelServerSettings) -> None:
        self.loaded = loaded

    @classmethod
    def load(cls, settings: ModelServerSettings) -> Self:
        """Loads `settings.location` (blocking; raises `PipelineLoadError` naming it)."""
        loaded = load_pipeline(
            settings.location,
            pipeline_class=settings.pipeline_class or None,
            allowed_classes=cls.pipeline_classes,
            device=settings.device or None,
        )
        return cls(loaded, settings)

    def sampling_arguments(self, job: J) -> dict[str, Any]:
        """The `pipe(...)` arguments every Qwen pipeline takes. Image i gets its own generator
        seeded `seed + i`, so any image of a call can be made again alone."""
        sampling = job.sampling
        kwargs: dict[str, Any] = {
            "prompt": sampling.prompt,
            "negative_prompt": sampling.negative_prompt,
            "width": job.width,
            "height": job.height,
            "num_inference_steps": sampling.steps,
            "num_images_per_prompt": sampling.num_images,
            "generator": self.generators(sampling),
        }
        kwargs.update(guidance_arguments(sampling))
        return kwargs

    def generators(self, sampling: Sampling) -> list[torch.Generator]:
        device = self.loaded.device
        return [
            torch.Generator(device).manual_seed(sampling.seed + i)
            for i in range(sampling.num_images)
        ]

    def arguments(self, job: J) -> dict[str, Any]:
        """The `pipe(...)` keyword arguments for a job (the benchmarks call the pipeline with
        these too)."""
        return self.sampling_arguments(job)

    def run(self, job: J, step: StepFn) -> list[Any]:
        """Runs the pipeline (blocking) and returns PIL images; `step(i)` after each step may
        raise to stop it, and gets the previews `sampling.partial_images` asks for."""
        callback = job_callback(step, job.sampling, job.width, job.height)
        result = self.loaded.pipe(**self.arguments(job), callback_on_step_end=callback)
        return list(result.images)
