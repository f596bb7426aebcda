"""The diffusers `QwenImagePipeline` behind the Qwen-Image server.

Jobs of the same size, steps and guidance share one call: `QwenImagePipeline` takes a list of
prompts, a list of negative prompts (one per prompt; true CFG is on or off for the whole call, so
whether there is a negative prompt is part of the key) and one generator per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.modelserver.limits import guidance_arguments
from services.modelserver.pipeline import BatchKey, ModelPipeline, PipelineJob

PIPELINE_CLASSES = ("QwenImagePipeline",)


@dataclass(frozen=True)
class TextToImageJob(PipelineJob):
    """A checked text-to-image request: the sampling parameters and the size are all it has."""


class TextToImagePipeline(ModelPipeline[TextToImageJob]):
    pipeline_classes = PIPELINE_CLASSES

    def batch_key(self, job: TextToImageJob) -> BatchKey:
        return self.shared_key(job)

    def call_arguments(self, jobs: list[TextToImageJob]) -> dict[str, Any]:
        """One prompt (and negative prompt) per image, each job's own repeated `n` times; one
        generator per image, each job's own seeds."""
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
            "generator": [g for job in jobs for g in self.generators(job.sampling)],
            **guidance_arguments(head.sampling),
        }
