"""Qwen-Image-Layered on the Qwen-Image-Edit server: `QwenImageLayeredPipeline` splits one image
into RGBA layers.

A server pointed at a Layered checkpoint (`QWEN_IMAGE_EDIT_LOCATION`; its `model_index.json`
names the class) runs `LayeredPipeline` instead of the edit one (`load_family`): it takes an
image in like an edit, and answers `layers` images, each an RGBA picture of one layer, in the
pipeline's order. The request knobs differ from an edit's, and `check_layered` refuses those the
pipeline does not take with messages naming the model:

- `mask` and `strength` (it redraws the whole picture as layers), `guidance_scale` (no guidance
  embedding: true CFG with a negative prompt), more than one input image;
- `n` above 1: each call's answer is one set of layers, and a result carries one set;
- `partial_images`: its latents hold every layer packed together, which the preview decoder of
  the other pipelines cannot unpack;
- JPEG output (no alpha channel: the layers' transparency would be lost).

What it adds (EditRequest fields 70-73): `layers` (1..`MAX_LAYERS`), `resolution` (the area
bucket the pipeline works at: 640 or 1024, the only two it accepts), `cfg_normalize` and
`caption_in_english`; the prompt may be empty, and the pipeline then captions the image with its
text encoder. The pipeline picks its own size (the bucket's area at the input's aspect ratio, on
a 32-pixel grid, floored to 16); `width` and `height`, when sent, resize the layers to that size
after the call (Lanczos), as the masked edit does.

Batching: none (`batch_key` None: each call takes one image). Cancel and streamed progress work
through the step callback; LoRA adapters load into its transformer as into Qwen-Image's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from services.common.errors import InvalidArgument
from services.modelserver.batching import BatchStepFn
from services.modelserver.limits import Sampling, check_size
from services.modelserver.loader import read_model_index
from services.modelserver.pipeline import ModelPipeline, PipelineJob
from services.modelserver.previews import batch_callback
from services.modelserver.tokens import image_tokens
from services.qwen_edit.settings import QwenEditSettings

LAYERED = "QwenImageLayeredPipeline"
PIPELINE_CLASSES = (LAYERED,)
MODEL = "Qwen-Image-Layered (QwenImageLayeredPipeline)"
DEFAULT_LAYERS = 4
RESOLUTIONS = (640, 1024)  # the pipeline asserts one of these
DEFAULT_RESOLUTION = 640
# The fields only a Layered server takes, as EditRequest names them.
LAYERED_FIELDS = ("layers", "resolution", "cfg_normalize", "caption_in_english")


@dataclass(frozen=True)
class LayeredJob(PipelineJob):
    image: Image.Image | None = None  # RGBA
    layers: int = DEFAULT_LAYERS
    resolution: int = DEFAULT_RESOLUTION
    cfg_normalize: bool = False
    caption_in_english: bool = False
    resize_to: tuple[int, int] | None = None  # the size asked for, when it is not the pipeline's


@dataclass(frozen=True)
class LayeredKnobs:
    """The request's Layered fields as sent (None: the default), and the edit knobs it refuses."""

    layers: int | None = None
    resolution: int | None = None
    cfg_normalize: bool | None = None
    caption_in_english: bool | None = None


def working_size(image: Image.Image, resolution: int) -> tuple[int, int]:
    """The size the pipeline makes its layers at: `resolution`² pixels at the image's aspect
    ratio on a 32-pixel grid, floored to 16 (diffusers' `calculate_dimensions` and the call's
    own rounding)."""
    ratio = image.width / image.height
    width = math.sqrt(resolution * resolution * ratio)
    height = width / ratio
    return round(width / 32) * 32 // 16 * 16, round(height / 32) * 32 // 16 * 16


class LayeredPipeline(ModelPipeline[LayeredJob]):
    pipeline_classes = PIPELINE_CLASSES
    model = MODEL
    max_input_images = 1

    def input_image_tokens(self, job: LayeredJob) -> int:
        """The image joins the transformer's sequence as latents at the working size."""
        return image_tokens(*working_size(job.image, job.resolution)) if job.image else 0

    def call_arguments(self, jobs: list[LayeredJob]) -> dict[str, Any]:
        (job,) = jobs
        sampling = self.sampling_arguments(job)
        for name in ("width", "height", "num_images_per_prompt"):
            sampling.pop(name)  # the pipeline sizes its layers itself; one set per call
        return {
            **sampling,
            "image": job.image,
            "layers": job.layers,
            "resolution": job.resolution,
            "cfg_normalize": job.cfg_normalize,
            "use_en_prompt": job.caption_in_english,
        }

    def call(self, jobs: list[LayeredJob], step: BatchStepFn) -> list[list[Any]]:
        (job,) = jobs
        self.adapters.activate(job.sampling.loras)
        result = self.loaded.pipe(
            **self.call_arguments(jobs), callback_on_step_end=batch_callback(step, jobs)
        )
        layers = list(result.images[0])
        if job.resize_to and job.resize_to != layers[0].size:
            layers = [layer.resize(job.resize_to, Image.Resampling.LANCZOS) for layer in layers]
        return [layers]


def load_family(settings: QwenEditSettings) -> ModelPipeline[Any]:
    """The pipeline the checkpoint's class calls for: Layered's, or the edit one (which refuses
    any other class with the list of those it runs)."""
    from services.qwen_edit.pipeline import EditPipeline

    class_name = settings.pipeline_class or str(
        read_model_index(settings.location).get("_class_name", "")
    )
    if class_name in PIPELINE_CLASSES:
        return LayeredPipeline.load(settings)
    return EditPipeline.load(settings)


def refuse_on_edit_server(knobs: LayeredKnobs, class_name: str) -> None:
    """A Layered field sent to a server that edits: `InvalidArgument` saying where it goes."""
    for name in LAYERED_FIELDS:
        if getattr(knobs, name) is not None:
            raise InvalidArgument(
                f"{name}: this server runs {class_name}, which does not split images into "
                "layers; send it to a Qwen-Image-Layered model (qwen-image-layered)"
            )


def check_layered(
    settings: QwenEditSettings,
    sampling: Sampling,
    knobs: LayeredKnobs,
    *,
    images: int,
    mask: bool,
    strength: float | None,
    guidance_scale: float | None,
) -> tuple[int, int]:
    """`(layers, resolution)` checked, or `InvalidArgument` naming the field and the model."""
    if mask:
        raise InvalidArgument(f"mask: {MODEL} splits the whole image into layers; leave mask out")
    if strength is not None:
        raise InvalidArgument(f"strength: {MODEL} takes no strength; leave strength out")
    if guidance_scale is not None:
        raise InvalidArgument(
            f"guidance_scale: {MODEL} takes no guidance_scale; "
            "use true_cfg_scale with a negative_prompt"
        )
    if images != 1:
        raise InvalidArgument(f"images: {images} given; {MODEL} splits exactly one image")
    if sampling.num_images != 1:
        raise InvalidArgument(
            f"num_images: {sampling.num_images}; {MODEL} answers one set of layers per request "
            "(its layers are the images); send 1"
        )
    if sampling.partial_images:
        raise InvalidArgument(
            f"partial_images: {MODEL} has no previews (its latents pack every layer together); "
            "send 0"
        )
    if sampling.output_format == "jpeg":
        raise InvalidArgument(
            f"output_format: jpeg has no alpha channel and {MODEL}'s layers are RGBA; "
            "use png or webp"
        )
    layers = DEFAULT_LAYERS if knobs.layers is None else knobs.layers
    if not 1 <= layers <= settings.max_layers:
        raise InvalidArgument(f"layers: {layers} is outside 1..{settings.max_layers}")
    resolution = DEFAULT_RESOLUTION if knobs.resolution is None else knobs.resolution
    if resolution not in RESOLUTIONS:
        raise InvalidArgument(
            f"resolution: {resolution} is not one of {MODEL}'s buckets; use 640 or 1024"
        )
    return layers, resolution


def layered_job(
    settings: QwenEditSettings,
    sampling: Sampling,
    knobs: LayeredKnobs,
    image: Image.Image,
    layers: int,
    resolution: int,
    size: tuple[int, int] | None,
) -> LayeredJob:
    """The job: at the pipeline's working size, resized to `size` when one was asked for."""
    width, height = working_size(image, resolution)
    if size is not None:
        check_size(settings, *size)
    resize_to = size if size is not None and size != (width, height) else None
    out_width, out_height = resize_to or (width, height)
    return LayeredJob(
        sampling,
        out_width,
        out_height,
        image=image,
        layers=layers,
        resolution=resolution,
        cfg_normalize=bool(knobs.cfg_normalize),
        caption_in_english=bool(knobs.caption_in_english),
        resize_to=resize_to,
    )
