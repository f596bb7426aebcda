"""The knobs every local model-server request carries the same way (qwen_image's GenerateRequest
and qwen_edit's EditRequest alike): output options, guidance, seed and LoRA adapters. Unset
optional knobs stay unset on the proto, so the model server's defaults apply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.gateway.lora_field import LoraChoice, lora_refs
from services.gateway.output_options import OutputOptions, set_on_request


class SamplingKnobs(Protocol):
    """What a generation or edit spec holds for these fields."""

    @property
    def true_cfg_scale(self) -> float | None: ...
    @property
    def guidance_scale(self) -> float | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def loras(self) -> Sequence[LoraChoice]: ...
    @property
    def output(self) -> OutputOptions: ...


def set_sampling(request: Any, spec: SamplingKnobs) -> None:
    """Sets `spec`'s output options, guidance, seed and adapters on a model-server request."""
    set_on_request(request, spec.output)
    if spec.true_cfg_scale is not None:
        request.true_cfg_scale = spec.true_cfg_scale
    if spec.guidance_scale is not None:
        request.guidance_scale = spec.guidance_scale
    if spec.seed is not None:
        request.seed = spec.seed
    request.loras.extend(lora_refs(spec.loras))
