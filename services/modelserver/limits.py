"""Request checks shared by the model servers, each failing with an `InvalidArgument` that says
which field is wrong, what was sent and what is accepted."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from services.common.errors import InvalidArgument
from services.modelserver.images import FORMATS
from services.modelserver.loras import LoraSet
from services.modelserver.settings import ModelServerSettings

MAX_SEED = 2**63 - 1  # Image.seed is an int64
MAX_SCALE = 50.0
MAX_PARTIAL_IMAGES = 3


@dataclass(frozen=True)
class Sampling:
    """The parameters every generation shares, checked, with the server defaults filled in."""

    prompt: str
    negative_prompt: str | None  # None: no negative prompt, so no true CFG
    steps: int
    true_cfg_scale: float | None  # None: the pipeline's default (4.0)
    guidance_scale: float | None
    seed: int  # image i of the call uses seed + i
    num_images: int
    output_format: str  # a key of images.FORMATS
    partial_images: int = 0  # previews a stream gets (0..MAX_PARTIAL_IMAGES)
    loras: LoraSet = ()  # the adapters, checked (`loras.py`); set by `ModelGenerator.sampling`
    output_compression: int | None = None  # JPEG/WebP quality 0..100; None: 95


def check_sampling(
    settings: ModelServerSettings,
    *,
    prompt: str,
    negative_prompt: str | None = None,
    num_inference_steps: int = 0,
    true_cfg_scale: float | None = None,
    guidance_scale: float | None = None,
    seed: int | None = None,
    num_images: int = 0,
    output_format: str = "png",
    partial_images: int = 0,
    output_compression: int | None = None,
) -> Sampling:
    """Checks the shared fields (0 or None = server default) and resolves the defaults.

    `negative_prompt` None is no negative prompt (no true CFG); "" is an empty one, with which
    true CFG runs (seed 003's default): the two stay distinct."""
    if not prompt.strip():
        raise InvalidArgument("prompt: must not be empty; describe the image you want")
    if len(prompt) > settings.max_prompt_chars:
        raise InvalidArgument(
            f"prompt: {len(prompt)} characters; at most {settings.max_prompt_chars}"
        )
    if negative_prompt is not None and len(negative_prompt) > settings.max_prompt_chars:
        raise InvalidArgument(
            f"negative_prompt: {len(negative_prompt)} characters; at most {settings.max_prompt_chars}"
        )
    steps = num_inference_steps or settings.default_steps
    if not settings.min_steps <= steps <= settings.max_steps:
        raise InvalidArgument(
            f"num_inference_steps: {steps} is outside {settings.min_steps}..{settings.max_steps}"
            + (" (one step gives a black image with this scheduler)" if steps == 1 else "")
        )
    count = num_images or 1
    if not 1 <= count <= settings.max_images:
        raise InvalidArgument(f"num_images: {count} is outside 1..{settings.max_images}")
    _check_scale("true_cfg_scale", true_cfg_scale)
    _check_scale("guidance_scale", guidance_scale)
    if seed is not None and not 0 <= seed <= MAX_SEED - count:
        raise InvalidArgument(f"seed: {seed} is outside 0..{MAX_SEED - count}")
    if output_format not in FORMATS:
        raise InvalidArgument(
            f"output_format: {output_format} is not supported; use one of {', '.join(FORMATS)}"
        )
    if output_compression is not None and not 0 <= output_compression <= 100:
        raise InvalidArgument(
            f"output_compression: {output_compression} is outside 0..100 (JPEG/WebP quality)"
        )
    if not 0 <= partial_images <= MAX_PARTIAL_IMAGES:
        raise InvalidArgument(
            f"partial_images: {partial_images} is outside 0..{MAX_PARTIAL_IMAGES} "
            "(previews a stream gets before the final image)"
        )
    return Sampling(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=steps,
        true_cfg_scale=true_cfg_scale,
        guidance_scale=guidance_scale,
        seed=pick_seed(count) if seed is None else seed,
        num_images=count,
        output_format=output_format,
        partial_images=partial_images,
        output_compression=output_compression,
    )


def _check_scale(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= MAX_SCALE):
        raise InvalidArgument(f"{name}: {value} is outside 0..{MAX_SCALE:g}")


def check_size(settings: ModelServerSettings, width: int, height: int) -> None:
    """Width and height in pixels: multiples of 16 within the server's range."""
    for name, value in (("width", width), ("height", height)):
        if not settings.min_size <= value <= settings.max_size:
            raise InvalidArgument(
                f"{name}: {value} is outside {settings.min_size}..{settings.max_size} pixels"
            )
        if value % 16:
            lower = value // 16 * 16
            raise InvalidArgument(
                f"{name}: {value} is not a multiple of 16; use {lower} or {lower + 16}"
            )


def guidance_arguments(sampling: Sampling) -> dict[str, float]:
    """`true_cfg_scale` / `guidance_scale` pipeline arguments for the sampling parameters.

    Without a negative prompt, true CFG is off whatever the scale; passing 1.0 then (instead of
    the pipeline's default 4.0) says so and spares a warning in the log on every call.
    """
    arguments: dict[str, float] = {}
    if sampling.true_cfg_scale is not None:
        arguments["true_cfg_scale"] = sampling.true_cfg_scale
    elif sampling.negative_prompt is None:
        arguments["true_cfg_scale"] = 1.0
    if sampling.guidance_scale is not None:
        arguments["guidance_scale"] = sampling.guidance_scale
    return arguments


def pick_seed(count: int = 1) -> int:
    """A random seed such that seed + count - 1 still fits an int64."""
    return secrets.randbelow(MAX_SEED - count + 1)
