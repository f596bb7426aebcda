"""The diffusers `QwenImagePipeline` behind the Qwen-Image server."""

from __future__ import annotations

from dataclasses import dataclass

from services.modelserver.pipeline import ModelPipeline, PipelineJob

PIPELINE_CLASSES = ("QwenImagePipeline",)


@dataclass(frozen=True)
class TextToImageJob(PipelineJob):
    """A checked text-to-image request: the sampling parameters and the size are all it has."""


class TextToImagePipeline(ModelPipeline[TextToImageJob]):
    pipeline_classes = PIPELINE_CLASSES
