"""The request knobs every image endpoint shares (generations and edits, OpenAI- and
DashScope-shaped, tasks too): Qwen's knobs, OpenAI's output options and streaming fields, the
response format a stream answers, and the model's limit on `n`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.catalog import Entry
from services.gateway.errors import invalid
from services.gateway.lora_field import LoraField
from services.gateway.numbers import Float, Int

ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp"]
# OpenAI's `quality`: gpt-image-1's four, and dall-e-3's two (standard = medium, hd = high).
Quality = Literal["low", "medium", "high", "auto", "standard", "hd"]
MAX_SEED = 2**63 - 1


class ImageKnobs(BaseModel):
    """The Qwen knobs both shapes share (seed 002 `parameters`, seed 003 top level)."""

    model_config = ConfigDict(extra="ignore")

    negative_prompt: str | None = None
    size: str | None = Field(default=None, examples=["1024x1024", "1328*1328"])
    aspect_ratio: str | None = Field(default=None, examples=["16:9"])
    width: Int | None = Field(default=None, ge=16, le=4096)
    height: Int | None = Field(default=None, ge=16, le=4096)
    n: Int = Field(default=1, ge=1, le=10)
    response_format: ResponseFormat = "url"
    num_inference_steps: Int | None = Field(default=None, ge=1, le=100)
    true_cfg_scale: Float | None = Field(default=None, ge=0, le=50)
    guidance_scale: Float | None = Field(default=None, ge=0, le=50)
    seed: Int | None = Field(default=None, ge=0, le=MAX_SEED)
    prompt_extend: bool | None = None
    watermark: bool = False
    lora: LoraField = None  # local models' LoRA adapters (services/gateway/lora_field.py)
    # OpenAI's output options (services/gateway/output_options.py says where each applies).
    output_format: OutputFormat | None = None
    output_compression: Int | None = Field(default=None, ge=0, le=100)
    quality: Quality | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    input_fidelity: Literal["high", "low"] | None = None


class StreamKnobs(BaseModel):
    """OpenAI's image streaming fields (gpt-image-1)."""

    stream: bool = Field(
        default=False,
        description="Answer text/event-stream: progress per step, partial images, then the result",
    )
    partial_images: Int = Field(
        default=0, ge=0, le=3, description="Previews sent while streaming (fewer if few steps)"
    )


def stream_format(request: ImageKnobs, stream: bool) -> str:
    """The response format: a stream carries base64 (OpenAI's streaming events do) unless the
    client asked for links."""
    if stream and "response_format" not in request.model_fields_set:
        return "b64_json"
    return request.response_format


def check_count(n: int, entry: Entry, prefix: str = "") -> None:
    if n > entry.max_images:
        raise invalid(
            f"{prefix}n must be between 1 and {entry.max_images} for {entry.name} (got {n})",
            f"{prefix}n",
        )
