"""The ControlNet fields of image requests: `control_image`, `controlnet_conditioning_scale`,
`control_guidance_start` and `control_guidance_end` (diffusers' own names), for qwen-image's
generations and masked edits.

`control_image` is one picture or a list: each an http(s) URL, a data: URL or bare base64, or an
object `{"image": ..., "controlnet": ...}` naming a ControlNet as `GET /v1/models` lists it under
the model (`controlnets`; `control_type` is taken as another name for `controlnet`). Left out, the
model server uses its first ControlNet of the kind the call needs. On a masked edit the object may
leave `image` out: the inpainting ControlNet then sees the edit's own image and mask. Several
pictures go through one ControlNet together (diffusers 0.42's multi-ControlNet).
`controlnet_conditioning_scale` is a number >= 0 for every picture or a list with one per
picture. A multipart form sends `control_image` as text (a URL, base64, or the field as JSON).

Checked here: shapes and ranges (0 <= start < end <= 1), that the model takes ControlNet inputs at
all (a 400 naming the model otherwise); the model server checks the ControlNet names (400 listing
its loaded ones) and what its pipelines take (no img2img).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from imagemesh.v1 import common_pb2
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from services.gateway.catalog import Entry
from services.gateway.errors import invalid
from services.gateway.sources import ImageSources, Input

MAX_CONTROL_IMAGES = 4
CONTROL_FIELDS = (
    "control_image",
    "controlnet_conditioning_scale",
    "control_guidance_start",
    "control_guidance_end",
)


class ControlImage(BaseModel):
    """One control picture and the ControlNet it is for."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    image: str | None = Field(
        default=None,
        min_length=1,
        description="http(s) URL, data: URL or base64; left out on a masked edit: its own image",
    )
    controlnet: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("controlnet", "control_type"),
        description="a ControlNet of the model (GET /v1/models `controlnets`); unset: its first",
    )


def _as_list(value: Any) -> Any:
    """One picture or several, as a list of objects; text is JSON (multipart) or one picture."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] in "[{":
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(
                    'not valid JSON; send a picture, {"image": ..., "controlnet": ...}, or a list'
                ) from None
        else:
            return [{"image": text}]
    if isinstance(value, dict):
        value = [value]
    if value is not None and not isinstance(value, list):
        raise ValueError('send a picture, {"image": ..., "controlnet": ...}, or a list of them')
    if isinstance(value, list):
        return [{"image": item} if isinstance(item, str) else item for item in value]
    return value


ControlImageField = Annotated[
    Annotated[list[ControlImage], Field(max_length=MAX_CONTROL_IMAGES)] | None,
    BeforeValidator(_as_list),
    Field(
        default=None,
        description="ControlNet control pictures of qwen-image (URL, data URL, base64, or "
        '{"image", "controlnet"}), one or a list',
        examples=["https://example.com/edges.png"],
    ),
]
MAX_SCALE = 10.0


class ControlKnobs(BaseModel):
    """The ControlNet fields, as generations (top level or DashScope `parameters`) and edits
    take them; how they fit together is checked by `control_spec`, which names the field."""

    control_image: ControlImageField = None
    controlnet_conditioning_scale: float | list[float] | None = Field(
        default=None, description="0..10 (unset: 1): one for every picture, or one per picture"
    )
    control_guidance_start: float | None = Field(
        default=None, ge=0, le=1, description="share of the steps the ControlNet starts at (0)"
    )
    control_guidance_end: float | None = Field(
        default=None, ge=0, le=1, description="share of the steps it stops at (1)"
    )


@dataclass
class ControlSpec:
    """A request's control fields, checked for shape; pictures not fetched yet."""

    images: list[ControlImage] = field(default_factory=list)
    scales: list[float] | None = None  # one per picture; None: the model server's (1.0)
    start: float | None = None
    end: float | None = None
    inputs: list[common_pb2.ControlInput] = field(default_factory=list)  # once fetched

    def given(self) -> bool:
        return bool(self.images)


def control_spec(knobs: object, prefix: str = "") -> ControlSpec:
    """The control fields of a request's knobs (none when its shape has none), or a 400 naming
    the field (`prefix`: where the knobs sit, "parameters." for DashScope)."""
    if not isinstance(knobs, ControlKnobs):
        return ControlSpec()
    images = list(knobs.control_image or [])
    if not images:
        for name in CONTROL_FIELDS[1:]:
            if getattr(knobs, name) is not None:
                raise invalid(
                    f"{prefix}{name} applies to control_image; send {prefix}control_image too",
                    f"{prefix}{name}",
                )
        return ControlSpec()
    start, end = knobs.control_guidance_start, knobs.control_guidance_end
    if (0.0 if start is None else start) >= (1.0 if end is None else end):
        raise invalid(
            f"{prefix}control_guidance_start ({0 if start is None else start:g}) must be below "
            f"{prefix}control_guidance_end ({1 if end is None else end:g})",
            f"{prefix}control_guidance_start",
        )
    given = knobs.controlnet_conditioning_scale
    scales = None if given is None else given if isinstance(given, list) else [given] * len(images)
    name = f"{prefix}controlnet_conditioning_scale"
    if scales is not None and len(scales) != len(images):
        raise invalid(
            f"{name} has {len(scales)} values for {len(images)} control_image pictures; "
            "send one number, or one per picture",
            name,
        )
    for scale in scales or []:
        if not (math.isfinite(scale) and 0 <= scale <= MAX_SCALE):
            raise invalid(f"{name} must be within 0..{MAX_SCALE:g} (got {scale:g})", name)
    return ControlSpec(images, scales, start, end)


def check_controls(control: ControlSpec, entry: Entry, prefix: str = "") -> None:
    """Only qwen-image's server runs ControlNets: a 400 naming the model for any other."""
    if not control.given() or entry.backend == "qwen_image":
        return
    why = (
        "diffusers 0.42 has no ControlNet edit pipeline"
        if entry.backend == "qwen_edit"
        else f"{entry.name} is a hosted model"
    )
    raise invalid(
        f"{prefix}control_image: {entry.name} takes no ControlNet inputs ({why}); qwen-image "
        "does, for generations and masked edits (GET /v1/models lists its controlnets)",
        f"{prefix}control_image",
    )


async def fetch_controls(
    control: ControlSpec, sources: ImageSources | None, prefix: str = ""
) -> None:
    """Fetches and checks the pictures (as edits' images are) into `control.inputs`, the model
    server's control inputs."""
    if not control.given() or control.inputs:
        return
    if sources is None:
        raise invalid(f"{prefix}control_image: not taken here", f"{prefix}control_image")
    several = len(control.images) > 1
    wanted = [
        (i, Input(f"{prefix}control_image" + (f"[{i}]" if several else ""), text=item.image))
        for i, item in enumerate(control.images)
        if item.image is not None
    ]
    loaded = dict(
        zip(
            (i for i, _ in wanted),
            await sources.load_all([given for _, given in wanted]),
            strict=True,
        )
    )
    inputs = []
    for i, item in enumerate(control.images):
        made = common_pb2.ControlInput(controlnet=item.controlnet or "")
        if i in loaded:
            made.image.data = loaded[i]
        if control.scales is not None:
            made.conditioning_scale = control.scales[i]
        inputs.append(made)
    control.inputs = inputs


def set_controls(request: Any, control: ControlSpec) -> None:
    """Sets the fetched control inputs and the guidance window on a qwen_image GenerateRequest."""
    request.controls.extend(control.inputs)
    if control.start is not None:
        request.control_guidance_start = control.start
    if control.end is not None:
        request.control_guidance_end = control.end


def refuse_in_task(parameters: dict[str, Any], prefix: str) -> None:
    """Tasks carry no control inputs yet: a 400 naming the field, rather than a task run without
    them (a local task drops keys it does not know)."""
    for name in CONTROL_FIELDS:
        if name in parameters:
            raise invalid(
                f"{prefix}{name}: tasks do not take ControlNet inputs yet; send them to POST "
                "/v1/images/generations (or a masked /v1/images/edits) with qwen-image",
                f"{prefix}{name}",
            )
