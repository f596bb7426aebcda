"""The fields a local model's request leaves out, filled in before the model server sees it.

OpenAI-shaped requests (generations without `input`, every edit) follow seed 003's tables, each a
gateway setting: 1664x928 (generations; an edit keeps its input image's size, rounded to 16, on
the model server), 50 steps, true CFG 4.0 with the negative prompt "" (generations) or " " (edits)
so that true CFG runs, and a random seed reported in `data[].seed` (seed 003's fixed 42 when
`GATEWAY_OPENAI_DEFAULT_SEED=42`). DashScope-shaped requests keep seed 002's: whatever the model
server defaults to (1024x1024, its default steps, no true CFG without a negative prompt).
Either way `quality` sets the steps a request leaves out (the model's `quality_steps`).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, TypeVar

from services.gateway.catalog import Entry
from services.gateway.output_options import OutputOptions, steps_for
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import parse_size


class Fillable(Protocol):
    shape: str
    width: int
    height: int
    num_inference_steps: int
    true_cfg_scale: float | None
    negative_prompt: str | None
    seed: int | None
    output: OutputOptions


F = TypeVar("F", bound=Fillable)


def fill(spec: F, entry: Entry, settings: GatewaySettings, edit: bool = False) -> F:
    """`spec` with the defaults of its shape filled in, for a local model."""
    steps = steps_for(spec.output, entry, spec.num_inference_steps)
    if spec.shape != "openai":
        return dataclasses.replace(spec, num_inference_steps=steps)  # type: ignore[type-var]
    width, height = spec.width, spec.height
    if not width and not edit:
        width, height = parse_size(settings.openai_default_size, "GATEWAY_OPENAI_DEFAULT_SIZE")
    if entry.few_step:
        # A few-step model without guidance (2.1 Turbo): its server's own steps, no true CFG.
        return dataclasses.replace(  # type: ignore[type-var]
            spec,
            width=width,
            height=height,
            num_inference_steps=steps,
            seed=settings.openai_default_seed if spec.seed is None else spec.seed,
        )
    negative = (
        settings.openai_edit_default_negative_prompt
        if edit
        else settings.openai_default_negative_prompt
    )
    return dataclasses.replace(  # type: ignore[type-var]
        spec,
        width=width,
        height=height,
        num_inference_steps=steps or settings.openai_default_steps,
        true_cfg_scale=(
            settings.openai_default_true_cfg_scale
            if spec.true_cfg_scale is None
            else spec.true_cfg_scale
        ),
        negative_prompt=negative if spec.negative_prompt is None else spec.negative_prompt,
        seed=settings.openai_default_seed if spec.seed is None else spec.seed,
    )
