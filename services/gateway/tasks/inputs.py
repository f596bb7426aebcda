"""A task's input images for img2img and inpainting on the local Qwen-Image server.

Seed 001's parameters name them `image` and `mask`; DashScope's image-edit API names them
`input.base_image_url` and `input.mask_image_url` (its async body's `input` is merged into the
parameters, so they arrive as `base_image_url` / `mask_image_url`). Each is an http(s) URL, a
data URL or base64. `strength` (0 < strength <= 1) goes with them. The gateway fetches and checks
the images when the task is created (a bad image is a 400 then, not a failed task later) and
the task carries the bytes; the parameters shown back keep a URL, and a note instead of inline
bytes (which would not fit the 64 KiB the tasks service keeps of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from services.gateway.apierror import invalid

PREFIX = "parameters."
NAMES = {"image": ("image", "base_image_url"), "mask": ("mask", "mask_image_url")}


@dataclass(frozen=True)
class ImageInput:
    field: str  # "image" or "mask": the TaskSpec field
    param: str  # as the client named it, for messages: "parameters.base_image_url"
    value: Any


def image_inputs(parameters: dict[str, Any]) -> list[ImageInput]:
    """The input image and mask the parameters give (image first), checked for presence."""
    found = []
    for field, names in NAMES.items():
        given = [name for name in names if parameters.get(name) not in (None, "")]
        if len(given) > 1:
            raise invalid(
                f"give one of {PREFIX}{given[0]} and {PREFIX}{given[1]}, not both",
                f"{PREFIX}{given[1]}",
            )
        if given:
            found.append(ImageInput(field, PREFIX + given[0], parameters[given[0]]))
    if [i.field for i in found] == ["mask"]:
        raise invalid(
            f"{found[0].param} needs the image it applies to: give {PREFIX}image too",
            found[0].param,
        )
    return found


def strength(parameters: dict[str, Any], has_image: bool) -> float | None:
    value = parameters.get("strength")
    if value is None:
        return None
    param = f"{PREFIX}strength"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{param} must be a number (got {value!r})", param)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise invalid(f"{param} must be > 0 and <= 1 (got {value})", param)
    if not has_image:
        raise invalid(f"{param} applies to an input image: give {PREFIX}image too", param)
    return float(value)


def shown(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as kept with the task: inline image bytes replaced by a note."""
    kept = dict(parameters)
    for names in NAMES.values():
        for name in names:
            value = kept.get(name)
            if isinstance(value, str) and not value.startswith(("http://", "https://")):
                kept[name] = f"(inline image, {len(value)} characters)"
    return kept
