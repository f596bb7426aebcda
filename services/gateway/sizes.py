"""Image sizes as clients write them: `1024x1024`, `1328*1328`, `width`/`height`, `aspect_ratio`.

Order (seed 002): `aspect_ratio` through a fixed map, else `size`; explicit `width`/`height` win
over both. `(0, 0)` means "the backend's default". Unlike the seed, a size that does not parse is a
400 naming the field, never a silent fallback to 1024x1024.
"""

from __future__ import annotations

import re

from services.gateway.errors import invalid

# Qwen-Image's recommended sizes per aspect ratio (its model card), rounded to multiples of 16
# because the VAE and 2x2 latent packing need them (1140 -> 1104).
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1328, 1328),
    "16:9": (1664, 928),
    "9:16": (928, 1664),
    "4:3": (1472, 1104),
    "3:4": (1104, 1472),
    "3:2": (1584, 1056),
    "2:3": (1056, 1584),
}

MAX_SIDE = 4096
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x*×X]\s*(\d{1,5})\s*$")


def parse_size(text: str, param: str = "size") -> tuple[int, int]:
    if text.strip().lower() == "auto":
        return 0, 0
    match = _SIZE.match(text)
    if not match:
        raise invalid(
            f"{param} must be WIDTHxHEIGHT such as 1024x1024 or 1328*1328, or auto (got {text!r})",
            param,
        )
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise invalid(
            f"{param}: each side must be between 16 and {MAX_SIDE} pixels (got {text.strip()})",
            param,
        )
    return width, height


def resolve_size(
    size: str | None = None,
    width: int | None = None,
    height: int | None = None,
    aspect_ratio: str | None = None,
    prefix: str = "",
) -> tuple[int, int]:
    """The (width, height) a request asks for; `prefix` names where the fields sit (`parameters.`)."""
    w, h = 0, 0
    if aspect_ratio:
        if aspect_ratio not in ASPECT_RATIOS:
            raise invalid(
                f"{prefix}aspect_ratio must be one of {', '.join(ASPECT_RATIOS)} "
                f"(got {aspect_ratio!r})",
                f"{prefix}aspect_ratio",
            )
        w, h = ASPECT_RATIOS[aspect_ratio]
    elif size:
        w, h = parse_size(size, f"{prefix}size")
    if width:
        w = width
    if height:
        h = height
    if (w == 0) != (h == 0):
        raise invalid(
            f"give both {prefix}width and {prefix}height (or a {prefix}size such as 1024x1024)",
            f"{prefix}width" if w == 0 else f"{prefix}height",
        )
    for name, value in ((f"{prefix}width", w), (f"{prefix}height", h)):
        if value < 0 or value > MAX_SIDE:
            raise invalid(f"{name} must be between 16 and {MAX_SIDE} pixels (got {value})", name)
    return w, h


def require_multiple_of_16(width: int, height: int, model: str, prefix: str = "") -> None:
    """Local Qwen pipelines need multiples of 16 (they would silently floor otherwise)."""
    for name, value in ((f"{prefix}width", width), (f"{prefix}height", height)):
        if value and (value % 16 or value < 16):
            raise invalid(
                f"{name} must be a multiple of 16 and at least 16 for {model} (got {value}); "
                f"try {max(16, round(value / 16) * 16)}",
                name,
            )
