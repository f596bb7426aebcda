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
from services.modelserver.tokens import image_tokens
from services.qwen_edit.settings import QwenEditSettings

EDIT = "QwenImageEditPipeline"
EDIT_PLUS = "QwenImageEditPlusPipeline"
PIPELINE_CLASSES = (EDIT, EDIT_PLUS)
# The area the edit pipelines encode each input image at (about one megapixel, on a 32-pixel
# grid), whatever the output size.
CONDITION_AREA = 1024 * 1024


@dataclass(frozen=True)
class EditJob(PipelineJob):
    images: tuple[Image.Image, ...] = ()  # RGB


def condition_size(image: Image.Image) -> tuple[int, int]:
    """About one megapixel with the image's aspect ratio: the size the edit pipelines resize an
    input image to before encoding it (diffusers' `calculate_dimensions`)."""
    ratio = image.width / image.height
    width = math.sqrt(CONDITION_AREA * ratio)
    return round(width / 32) * 32, round(width / ratio / 32) * 32


def default_size(image: Image.Image, max_side: int) -> tuple[int, int]:
    """An edit without a size keeps the input image's (issue 15), each side rounded to a multiple
    of 16; a side over `max_side` scales both down, aspect kept."""
    scale = min(1.0, max_side / max(image.width, image.height))
    return tuple(  # type: ignore[return-value]
        max(16, min(max_side // 16 * 16, round(side * scale / 16) * 16)) for side in image.size
    )


class EditPipeline(ModelPipeline[EditJob]):
    pipeline_classes = PIPELINE_CLASSES

    def __init__(self, loaded: LoadedPipeline, settings: QwenEditSettings) -> None:
        super().__init__(loaded, settings)
        self.max_input_images = 1 if loaded.class_name == EDIT else settings.max_input_images

    def input_image_tokens(self, job: EditJob) -> int:
        """Each input image joins the transformer's sequence as latents at its condition size."""
        return sum(image_tokens(*condition_size(image)) for image in job.images)

    def call_arguments(self, jobs: list[EditJob]) -> dict[str, Any]:
        (job,) = jobs
        images = list(job.images)
        return {
            "image": images if self.loaded.class_name == EDIT_PLUS else images[0],
            **self.sampling_arguments(job),
        }
