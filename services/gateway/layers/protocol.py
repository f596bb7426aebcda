"""Wire models of POST /v1/images/layers (ours: no standard API splits an image into layers):
JSON (`image` as an http(s) URL, data URL or bare base64) or multipart (an `image` file and text
fields). Both become one `LayersSpec`; the image stays unresolved (`ImageRef`) until the serving
layer fetches and checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.edits.protocol import ImageRef
from services.gateway.errors import invalid
from services.gateway.knobs import MAX_SEED, ResponseFormat
from services.gateway.lora_field import LoraChoice, LoraField
from services.gateway.numbers import Float, Int
from services.gateway.output_options import OutputOptions
from services.gateway.sizes import resolve_size
from services.gateway.validation import parse

MIN_LAYERS, MAX_LAYERS, DEFAULT_LAYERS = 2, 8, 4


class LayersFields(BaseModel):
    """The text fields both forms share."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, examples=["qwen-image-layered"])
    prompt: str | None = Field(
        default=None,
        max_length=8000,
        description="What the image shows; left out, the model captions the image itself",
    )
    layers: Int = Field(
        default=DEFAULT_LAYERS,
        ge=MIN_LAYERS,
        le=MAX_LAYERS,
        description="How many RGBA layers to split the image into",
    )
    resolution: Literal[640, 1024] = Field(
        default=640, description="The area bucket the model works at (640² or 1024² pixels)"
    )
    size: str | None = Field(
        default=None,
        examples=["640x480"],
        description="Resize the layers to WxH (multiples of 16); left out: the model's size "
        "(the bucket's area at the image's aspect ratio)",
    )
    negative_prompt: str | None = Field(default=None, max_length=8000)
    true_cfg_scale: Float | None = Field(default=None, ge=0, le=50)
    cfg_normalize: bool | None = None
    caption_in_english: bool | None = Field(
        default=None, description="Without a prompt: caption in English (default Chinese)"
    )
    num_inference_steps: Int | None = Field(default=None, ge=2, le=100)
    seed: Int | None = Field(default=None, ge=0, le=MAX_SEED)
    response_format: ResponseFormat = "url"
    output_format: Literal["png", "webp"] | None = Field(
        default=None, description="png (default) or webp: both keep the layers' alpha"
    )
    lora: LoraField = None
    stream: bool = Field(
        default=False,
        description="Not offered here (the answer comes when the layers are ready); for "
        "progress, create a task and watch it",
    )


class LayersJsonRequest(LayersFields):
    image: Any = Field(
        default=None,
        description="The image: http(s) URL, data: URL or bare base64",
        examples=["https://example.com/poster.png"],
    )


class LayersFormRequest(LayersFields):
    """Multipart: an `image` file (or URL / data URL / base64 text) and the text fields."""

    image: bytes = Field(description="The image file (PNG, JPEG, WebP); its alpha is kept")


@dataclass
class LayersSpec:
    model: str | None
    image: ImageRef
    prompt: str = ""
    layers: int = DEFAULT_LAYERS
    resolution: int = 640
    width: int = 0  # 0: the model's own size
    height: int = 0
    negative_prompt: str | None = None
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None  # never set: Layered takes none (set_sampling reads it)
    cfg_normalize: bool | None = None
    caption_in_english: bool | None = None
    num_inference_steps: int = 0
    seed: int | None = None
    response_format: str = "url"
    output: OutputOptions = field(default_factory=OutputOptions)
    loras: list[LoraChoice] = field(default_factory=list)


def _spec(request: LayersFields, image: ImageRef | None) -> LayersSpec:
    if image is None:
        raise invalid(
            "image is required: the image to split (a file upload, or an http(s) URL, data: URL "
            "or base64 in JSON)",
            "image",
        )
    if request.stream:
        # Refused rather than ignored: a client asking for events would wait on a plain answer.
        raise invalid(
            "stream: /v1/images/layers does not stream; it answers when the layers are ready "
            "(for progress, create a task at POST /api/v1/tasks and watch it)",
            "stream",
        )
    width, height = resolve_size(request.size) if request.size else (0, 0)
    return LayersSpec(
        model=request.model,
        image=image,
        prompt=(request.prompt or "").strip(),
        layers=request.layers,
        resolution=request.resolution,
        width=width,
        height=height,
        negative_prompt=request.negative_prompt,
        true_cfg_scale=request.true_cfg_scale,
        cfg_normalize=request.cfg_normalize,
        caption_in_english=request.caption_in_english,
        num_inference_steps=request.num_inference_steps or 0,
        seed=request.seed,
        response_format=request.response_format,
        output=OutputOptions(request.output_format),
        loras=request.lora or [],
    )


def json_spec(request: LayersJsonRequest) -> LayersSpec:
    if isinstance(request.image, list):
        raise invalid("image: one image per request (got a list)", "image")
    image = None if request.image in (None, "") else ImageRef("image", text=request.image)
    return _spec(request, image)


def form_spec(fields: dict[str, Any], image: bytes | str | None) -> LayersSpec:
    request = parse(LayersFields, fields)
    if image in (None, b"", ""):
        return _spec(request, None)
    ref = (
        ImageRef("image", data=image) if isinstance(image, bytes) else ImageRef("image", text=image)
    )
    return _spec(request, ref)
