"""Wire models of POST /v1/images/edits: JSON (seed 004: `image` as URL, data URL, base64, or a
list of them; optional `mask`) and multipart form data (seed 003: `image` file(s) and fields).

Both become one `EditSpec`; the images stay unresolved (`ImageRef`) until the serving layer
fetches and checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from services.gateway.control_fields import ControlKnobs, ControlSpec, control_spec
from services.gateway.errors import invalid
from services.gateway.knobs import ImageKnobs, StreamKnobs, stream_format
from services.gateway.lora_field import LoraChoice
from services.gateway.numbers import Float
from services.gateway.output_options import OutputOptions, options_from
from services.gateway.sizes import resolve_size
from services.gateway.validation import parse

MAX_INPUT_IMAGES = 16


class EditKnobs(ImageKnobs, StreamKnobs, ControlKnobs):
    """What both edit forms share: every knob of generations, streaming included, and the
    img2img / inpainting `strength` of the local models."""

    strength: Float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="How far the picture may move from the input, 0 < strength <= 1 (local "
        "models): qwen-image without a mask (img2img) defaults to 0.6; with a mask, 1.0 "
        "(the masked area is redrawn from noise)",
    )


class EditJsonRequest(EditKnobs):
    """JSON edits: every knob of generations, plus the images."""

    model: str | None = Field(default=None, examples=["qwen-image-edit"])
    prompt: str = Field(min_length=1, examples=["give the cat a party hat"])
    image: Any = Field(
        default=None,
        description="An image or a list of images: http(s) URL, data: URL or bare base64",
        examples=["https://example.com/cat.png"],
    )
    images: list[Any] | None = Field(
        default=None, description="OpenAI's JSON form: [{image_url: ...}], same as `image`"
    )
    mask: Any = Field(default=None, description="Optional mask image, same forms as `image`")
    prompts: list[str] | None = Field(
        default=None, description="One prompt per input image (batch edits of hosted models)"
    )


class EditFormFields(EditKnobs):
    """The text fields of a multipart edit (numbers arrive as text and are converted)."""

    model: str | None = None
    prompt: str = Field(min_length=1)


class EditFormRequest(EditFormFields):
    """Multipart edits (seed 003): `image` (or `image[]`) file(s), optional `mask` file.
    An `image` field may also be a URL, data URL or base64 text."""

    image: list[bytes] = Field(description="One or more image files (PNG, JPEG, WebP)")
    mask: bytes | None = Field(default=None, description="Optional mask image file")


@dataclass
class ImageRef:
    """An input image as the client gave it: uploaded bytes, or text (URL, data URL, base64)."""

    param: str  # the field, for messages: "image", "image[1]", "mask"
    data: bytes | None = None
    text: Any = None


@dataclass
class EditSpec:
    model: str | None
    prompt: str
    images: list[ImageRef]
    mask: ImageRef | None = None
    prompts: list[str] = field(default_factory=list)
    negative_prompt: str | None = None  # None: not given ("" is given: true CFG runs with it)
    width: int = 0
    height: int = 0
    n: int = 1
    response_format: str = "url"
    num_inference_steps: int = 0
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    stream: bool = False
    partial_images: int = 0  # previews in a stream, 0..3
    loras: list[LoraChoice] = field(default_factory=list)  # the request's `lora`
    output: OutputOptions = field(default_factory=OutputOptions)
    shape: str = "openai"  # edits are always OpenAI-shaped (seed 003's defaults apply)
    strength: float | None = None  # local img2img / inpainting; None: the model server's default
    control: ControlSpec = field(default_factory=ControlSpec)  # ControlNet inputs (qwen-image)


def _spec(
    request: EditKnobs,
    model: str | None,
    prompt: str,
    images: list[ImageRef],
    mask: ImageRef | None,
    prompts: list[str] | None = None,
) -> EditSpec:
    if not prompt.strip():
        raise invalid("prompt must not be empty: describe the edit", "prompt")
    if not images:
        raise invalid(
            "image is required: give one or more images (file uploads, or http(s) URLs, "
            "data: URLs or base64 in JSON)",
            "image",
        )
    if len(images) > MAX_INPUT_IMAGES:
        raise invalid(f"at most {MAX_INPUT_IMAGES} images per edit (got {len(images)})", "image")
    if prompts and len(prompts) != len(images):
        raise invalid(
            f"prompts must have one prompt per image ({len(images)}), got {len(prompts)}",
            "prompts",
        )
    width, height = resolve_size(request.size, request.width, request.height, request.aspect_ratio)
    return EditSpec(
        model=model,
        prompt=prompt,
        images=images,
        mask=mask,
        prompts=list(prompts or []),
        negative_prompt=request.negative_prompt,
        width=width,
        height=height,
        n=request.n,
        response_format=stream_format(request, request.stream),
        num_inference_steps=request.num_inference_steps or 0,
        true_cfg_scale=request.true_cfg_scale,
        guidance_scale=request.guidance_scale,
        seed=request.seed,
        stream=request.stream,
        partial_images=request.partial_images,
        loras=request.lora or [],
        output=options_from(request),
        strength=request.strength,
        control=control_spec(request),
    )


def json_spec(request: EditJsonRequest) -> EditSpec:
    given = request.image if request.image is not None else request.images
    values = given if isinstance(given, list) else ([] if given is None else [given])
    name = "image" if request.image is not None else "images"
    refs = [
        ImageRef(f"{name}[{i}]" if len(values) > 1 or isinstance(given, list) else name, text=v)
        for i, v in enumerate(values)
    ]
    mask = ImageRef("mask", text=request.mask) if request.mask not in (None, "") else None
    return _spec(request, request.model, request.prompt, refs, mask, request.prompts)


def form_spec(
    fields: dict[str, Any], images: list[bytes | str], mask: bytes | str | None
) -> EditSpec:
    """Multipart: the text fields, then the `image` parts in order (file bytes or text)."""
    request = parse(EditFormFields, fields)
    refs = [_ref(f"image[{i}]" if len(images) > 1 else "image", v) for i, v in enumerate(images)]
    mask_ref = _ref("mask", mask) if mask not in (None, b"", "") else None
    return _spec(request, request.model, request.prompt, refs, mask_ref)


def _ref(param: str, value: bytes | str | None) -> ImageRef:
    return ImageRef(param, data=value) if isinstance(value, bytes) else ImageRef(param, text=value)
