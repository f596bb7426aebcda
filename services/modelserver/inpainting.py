"""Image-conditioned requests: reading masks, checking `strength`, and the inpaint / img2img
pipelines derived from a loaded one over the same weights.

Masks follow OpenAI's edits API: fully transparent pixels mark the area to change. A mask
without transparency (no alpha channel, or an alpha channel that is opaque everywhere) is read
as greyscale, white = change, as diffusers reads it. Either way the result is an "L" image, white
where the pipeline repaints, and must be the size of the image it applies to.

`derive` builds another pipeline class with diffusers' `from_pipe` on the loaded pipeline's own
modules (the transformer, VAE and text encoder are the same objects), so holding the plain,
inpaint and img2img pipelines costs only the new wrapper objects, not a second copy of weights.
"""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image, UnidentifiedImageError

from services.common.errors import InvalidArgument

# diffusers' own default for QwenImageImg2ImgPipeline (and its inpaint pipelines).
IMG2IMG_STRENGTH = 0.6
# A mask means "redraw this area" (OpenAI's edits): the masked area starts from pure noise.
INPAINT_STRENGTH = 1.0


def read_mask(data: bytes, max_pixels: int) -> Image.Image:
    """The mask as an "L" image, white = change (see the module docstring)."""
    if not data:
        raise InvalidArgument("mask: empty; send the mask image bytes (PNG with alpha)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise InvalidArgument(
                    f"mask: {width}x{height} is too large; at most {max_pixels} pixels"
                )
            probe.load()
            return mask_from(probe)
    except InvalidArgument:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InvalidArgument(f"mask: not a decodable image ({exc})") from exc


def mask_from(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        alpha = image.convert("RGBA").getchannel("A")
        low, _ = alpha.getextrema()
        if int(low) < 255:  # type: ignore[arg-type]  # one band: (min, max) of ints  # some transparency: that is what marks the area
            return alpha.point(lambda a: 255 if a == 0 else 0)
    return image.convert("L")


def check_mask_size(mask: Image.Image, image: Image.Image, image_field: str) -> None:
    if mask.size != image.size:
        raise InvalidArgument(
            f"mask: {mask.width}x{mask.height} does not match {image_field}, which is "
            f"{image.width}x{image.height}; send a mask of the image's size"
        )


def check_strength(strength: float | None, default: float, steps: int) -> float:
    """`strength` in (0, 1] (default when None), such that at least one step runs."""
    value = default if strength is None else strength
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise InvalidArgument(
            f"strength: {value:.4g} is outside 0..1 (0 excluded; 1 redraws from noise)"
        )
    if steps_run(steps, value) < 1:
        raise InvalidArgument(
            f"strength: {value:.4g} x {steps} steps runs no denoising step; "
            f"raise strength to at least {1 / steps:.3g} or ask for more steps"
        )
    return value


def steps_run(steps: int, strength: float) -> int:
    """The denoising steps a diffusers img2img / inpaint call of `steps` runs at `strength`: it
    skips the first int(steps - steps x strength) of the schedule (their `get_timesteps`)."""
    return steps - int(max(steps - steps * strength, 0))


def round_size(image: Image.Image, multiple: int = 16) -> tuple[int, int]:
    """The image's size rounded to the nearest multiple (at least one multiple)."""
    return tuple(max(multiple, round(side / multiple) * multiple) for side in image.size)  # type: ignore[return-value]


def derive(pipe: Any, class_name: str) -> Any:
    """`class_name` (a diffusers pipeline class) over `pipe`'s modules: no new weights."""
    import diffusers

    derived = getattr(diffusers, class_name).from_pipe(pipe)
    derived.set_progress_bar_config(disable=True)
    return derived
