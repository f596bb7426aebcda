"""The diffusers edit pipelines behind the Qwen-Image-Edit server.

`QwenImageEditPipeline` takes one input image, `QwenImageEditPlusPipeline` several; which one is
loaded comes from the checkpoint's `model_index.json` or the `pipeline_class` setting.

Edits run one job per call (`batch_key` stays None): in diffusers 0.42.1
`QwenImageEditPlusPipeline` refuses more than one prompt per call, and `QwenImageEditPipeline`
takes one input image for every prompt of a call (its processor then wants one image per
prompt), so two requests with their own input images cannot share a call. A job's `n` images
still come from one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from services.modelserver.loader import LoadedPipeline
from services.modelserver.pipeline import ModelPipeline, PipelineJob
from services.qwen_edit.settings import QwenEditSettings

EDIT = "QwenImageEditPipeline"
EDIT_PLUS = "QwenImageEditPlusPipeline"
PIPELINE_CLASSES = (EDIT, EDIT_PLUS)
# The edit pipelines' own default output area (about one megapixel), on a 32-pixel grid.
DEFAULT_AREA = 1024 * 1024


@dataclass(frozen=True)
class EditJob(PipelineJob):
    images: tuple[Image.Image, ...] = ()  # RGB


def default_size(image: Image.Image) -> tuple[int, int]:
    """About one megapixel with the image's aspect ratio, as the edit pipelines choose."""
    ratio = image.width / image.height
    width = math.sqrt(DEFAULT_AREA * ratio)
    return round(width / 32) * 32, round(width / ratio / 32) * 32


class EditPipeline(ModelPipeline[EditJob]):
    pipeline_classes = PIPELINE_CLASSES

    def __init__(self, loaded: LoadedPipeline, settings: QwenEditSettings) -> None:
        super().__init__(loaded, settings)
        self.max_input_images = 1 if loaded.class_name == EDIT else settings.max_input_images

    def call_arguments(self, jobs: list[EditJob]) -> dict[str, Any]:
        (job,) = jobs
        images = list(job.images)
        return {
            "image": images if self.loaded.class_name == EDIT_PLUS else images[0],
            **self.sampling_arguments(job),
        }
