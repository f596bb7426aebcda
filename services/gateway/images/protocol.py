"""Wire models of POST /v1/images/generations: the OpenAI shape and the DashScope shape.

A body with `input` is DashScope-shaped (seed 002) and is answered in the DashScope shape
(`output.choices[].message.content[]`); any other body is OpenAI-shaped (seed 003/004, `data[]`).
Both become one `GenerationSpec`. An OpenAI-shaped body may ask for `stream: true` (server-sent
events with progress and `partial_images` previews, `services/gateway/sse.py`); a stream answers
`b64_json` unless the body asks for `url`, as OpenAI's streaming events do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.gateway.control_fields import ControlKnobs, ControlSpec, control_spec
from services.gateway.envelope import success
from services.gateway.errors import invalid
from services.gateway.knobs import ImageKnobs, StreamKnobs, stream_format
from services.gateway.lora_field import LoraChoice
from services.gateway.numbers import Int
from services.gateway.outcome import Outcome
from services.gateway.output_options import OutputOptions, options_from
from services.gateway.sizes import resolve_size
from services.gateway.usage import openai_fields, openai_usage


class OpenAIImageRequest(ImageKnobs, StreamKnobs, ControlKnobs):
    """OpenAI's images API plus the Qwen knobs of seed 003."""

    model: str | None = Field(default=None, examples=["qwen-image"])
    prompt: str = Field(min_length=1, examples=["a cute baby sea otter"])


class DashScopeContent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str | None = None


class DashScopeMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str = "user"
    content: list[DashScopeContent] | str


class DashScopeInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[DashScopeMessage] | None = None
    # The text2image API's flat form (wanx): input.prompt / input.negative_prompt.
    prompt: str | None = None
    negative_prompt: str | None = None

    @model_validator(mode="after")
    def _has_prompt(self) -> DashScopeInput:
        if not self.messages and not self.prompt:
            raise ValueError(
                "give input.messages[0].content[0].text (or input.prompt) with the prompt"
            )
        return self


class DashScopeParameters(ImageKnobs, ControlKnobs):
    n: Int = Field(default=1, ge=1, le=10)


class DashScopeImageRequest(BaseModel):
    """DashScope's multimodal-generation request (seed 002)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = Field(default=None, examples=["aliyun/aliyun/qwen-image-plus"])
    input: DashScopeInput
    parameters: DashScopeParameters = Field(default_factory=DashScopeParameters)

    def prompt(self) -> str:
        if self.input.prompt:
            return self.input.prompt
        messages = self.input.messages or []
        for m_index in range(len(messages) - 1, -1, -1):
            message = messages[m_index]
            if message.role != "user":
                continue
            if isinstance(message.content, str):
                texts = [message.content]
            else:
                texts = [part.text for part in message.content if part.text]
            if any(t.strip() for t in texts):
                return "\n".join(texts)
        raise invalid(
            "input.messages[0].content[0].text is required: the prompt, as a user message's text",
            "input.messages[0].content[0].text",
        )


@dataclass
class GenerationSpec:
    """One generation, whatever shape it came in."""

    model: str | None
    prompt: str
    negative_prompt: str | None = None  # None: not given ("" is given: true CFG runs with it)
    width: int = 0  # 0 = the backend's default
    height: int = 0
    n: int = 1
    response_format: str = "url"
    num_inference_steps: int = 0
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    prompt_extend: bool | None = None
    watermark: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    param_prefix: str = ""  # where the knobs sit in the request ("parameters." for DashScope)
    stream: bool = False
    partial_images: int = 0  # previews in a stream, 0..3
    loras: list[LoraChoice] = field(default_factory=list)  # the request's `lora`
    output: OutputOptions = field(default_factory=OutputOptions)
    shape: str = "openai"  # or "dashscope": which defaults a local model gets (openai_defaults)
    control: ControlSpec = field(default_factory=ControlSpec)  # ControlNet inputs (qwen-image)


def _spec(model: str | None, prompt: str, knobs: ImageKnobs, prefix: str) -> GenerationSpec:
    if not prompt.strip():
        raise invalid("prompt must not be empty: describe the image to make", "prompt")
    width, height = resolve_size(knobs.size, knobs.width, knobs.height, knobs.aspect_ratio, prefix)
    return GenerationSpec(
        model=model,
        prompt=prompt,
        negative_prompt=knobs.negative_prompt,
        width=width,
        height=height,
        n=knobs.n,
        response_format=knobs.response_format,
        num_inference_steps=knobs.num_inference_steps or 0,
        true_cfg_scale=knobs.true_cfg_scale,
        guidance_scale=knobs.guidance_scale,
        seed=knobs.seed,
        prompt_extend=knobs.prompt_extend,
        watermark=knobs.watermark,
        param_prefix=prefix,
        loras=knobs.lora or [],
        output=options_from(knobs),
        control=control_spec(knobs, prefix),
    )


def openai_spec(request: OpenAIImageRequest) -> GenerationSpec:
    spec = _spec(request.model, request.prompt, request, "")
    spec.stream, spec.partial_images = request.stream, request.partial_images
    spec.response_format = stream_format(request, request.stream)
    return spec


def dashscope_spec(request: DashScopeImageRequest) -> GenerationSpec:
    params = request.parameters
    if request.input.negative_prompt and not params.negative_prompt:
        params = params.model_copy(update={"negative_prompt": request.input.negative_prompt})
    spec = _spec(request.model, request.prompt(), params, "parameters.")
    # Seed 002's negative prompt "may be empty": "" is none there, true CFG stays off.
    spec.shape, spec.negative_prompt = "dashscope", spec.negative_prompt or None
    # Seed 002's guidance_scale ("text guidance strength, 3.0-6.0") is Qwen-Image's true CFG
    # scale; the proto's guidance_scale is for guidance-distilled checkpoints only.
    if spec.true_cfg_scale is None and spec.guidance_scale is not None:
        spec.true_cfg_scale, spec.guidance_scale = spec.guidance_scale, None
    return spec


class OpenAIImage(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


class ImageUsage(BaseModel):
    width: int
    height: int
    image_count: int


class InputTokensDetails(BaseModel):
    text_tokens: int
    image_tokens: int


class OpenAIUsage(ImageUsage):
    """OpenAI's image usage (tokens counted by the model server) beside our pixel fields."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails


class OpenAIImagesResponse(BaseModel):
    """What an OpenAI-shaped request gets (the envelope's fields first)."""

    code: int = 0
    message: str = "success"
    created: int
    request_id: str
    model: str
    data: list[OpenAIImage]
    usage: OpenAIUsage
    output_format: str | None = None
    background: str | None = None
    size: str | None = None
    quality: str | None = None


class DashScopeImagesResponse(BaseModel):
    """What a DashScope-shaped request gets: output.choices[].message.content[].image|b64_json."""

    code: int = 0
    message: str = "success"
    created: int
    request_id: str
    output: dict[str, Any]
    usage: ImageUsage


def openai_answer(outcome: Outcome) -> dict[str, Any]:
    data = []
    for image in outcome.images:
        item: dict[str, Any] = image.openai()
        if outcome.revised_prompt:
            item["revised_prompt"] = outcome.revised_prompt
        if image.seed:
            item["seed"] = image.seed
        data.append(item)
    body: dict[str, Any] = {
        "model": outcome.model,
        "data": data,
        "usage": openai_usage(outcome),
        **openai_fields(outcome),
    }
    if outcome.warnings:
        body["warnings"] = outcome.warnings
    return success(body, outcome.created)


def dashscope_answer(outcome: Outcome) -> dict[str, Any]:
    choices = [
        {
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": [
                    {"image": image.url} if image.url is not None else {"b64_json": image.b64_json}
                ],
            },
        }
        for image in outcome.images
    ]
    output: dict[str, Any] = {
        "choices": choices,
        "task_metric": {
            "TOTAL": len(outcome.images) + len(outcome.warnings),
            "SUCCEEDED": len(outcome.images),
            "FAILED": len(outcome.warnings),
        },
    }
    if outcome.revised_prompt:
        output["actual_prompt"] = outcome.revised_prompt
    return success({"output": output, "usage": _usage(outcome)}, outcome.created)


def _usage(outcome: Outcome) -> dict[str, int]:
    return {"width": outcome.width, "height": outcome.height, "image_count": len(outcome.images)}
