"""Text to image without gRPC: a request's checks; the rest is `ModelGenerator`'s.

`Generator` refuses bad requests with `InvalidArgument` before they take a queue slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.modelserver.generator import ModelGenerator, SamplingSpec
from services.modelserver.limits import check_size
from services.qwen_image.pipeline import TextToImageJob, TextToImagePipeline
from services.qwen_image.settings import QwenImageSettings


@dataclass(frozen=True)
class GenerateSpec(SamplingSpec):
    """A text-to-image request as the caller sent it: 0 and None mean "server default"."""


class Generator(ModelGenerator[QwenImageSettings, GenerateSpec, TextToImageJob]):
    name = "qwen_image"
    pipeline_type = TextToImagePipeline

    def check(self, spec: GenerateSpec) -> TextToImageJob:
        """The job for a request, or `InvalidArgument` naming what to fix."""
        sampling = self.sampling(spec)
        width = spec.width or self.settings.default_width
        height = spec.height or self.settings.default_height
        check_size(self.settings, width, height)
        return TextToImageJob(sampling, width, height)

    async def prepare(self, spec: GenerateSpec) -> TextToImageJob:
        return self.check(spec)
