"""Hosted qwen-image-plus on DashScope (`dashscope-qwen-image`): the synchronous
`multimodal-generation/generation` call (one user message, one text part, `W*H` sizes).

The model makes one image per call (`n` must be 1 upstream), so `n` > 1 runs n calls at once,
seeds `seed`, `seed + 1`, ... when a seed is given. Result URLs are downloaded here.
"""

from __future__ import annotations

from typing import Any

from services.common.errors import InvalidArgument, ProviderFailed
from services.providers.adapter import Adapter
from services.providers.adapters._dashscope import (
    NATIVE,
    check_native,
    check_seed,
    dashscope_missing,
    dashscope_upstream,
    size_param,
)
from services.providers.batch import run_all
from services.providers.registry import register_adapter
from services.providers.types import Image, ImageGroup, ImageSpec, ImagesResult, Usage

PATH = f"{NATIVE}/services/aigc/multimodal-generation/generation"
# Both revisions of the Qwen-Image size list (the live set per model is not confirmed).
SIZES = ("1664*928", "1472*1104", "1328*1328", "1104*1472", "928*1664", "1472*1140", "1140*1472")
RESERVED = frozenset({"size", "seed", "n", "negative_prompt", "prompt_extend", "watermark"})


@register_adapter("dashscope-qwen-image")
class QwenImagePlus(Adapter):
    provider = "dashscope"
    models = ("qwen-image-plus",)
    kind = "image"

    def missing_config(self) -> str | None:
        return dashscope_missing(self.env)

    async def generate(self, spec: ImageSpec) -> ImagesResult:
        if not spec.prompt.strip():
            raise InvalidArgument("prompt: give a prompt")
        size = size_param(spec.width, spec.height)
        if size is not None and size not in SIZES:
            raise InvalidArgument(
                f"size {size} is not offered by {spec.model}; use one of {', '.join(SIZES)}"
            )
        n = spec.n or 1
        if not 1 <= n <= 4:
            raise InvalidArgument(f"n: {n}; {spec.model} makes 1 to 4 images here")
        seed = check_seed(spec.seed)
        parameters: dict[str, Any] = {k: v for k, v in spec.extra.items() if k not in RESERVED} | {
            "prompt_extend": spec.prompt_extend,
            "watermark": spec.watermark,
        }
        if spec.negative_prompt:
            parameters["negative_prompt"] = spec.negative_prompt
        if size:
            parameters["size"] = size
        calls = []
        for i in range(n):
            params = dict(parameters)
            if seed is not None:
                params["seed"] = (seed + i) % 2147483648
            calls.append(self._one(spec, params))
        made = await run_all(calls)
        images = [img for imgs, _ in made for img in imgs]
        usage = made[0][1]
        usage.image_count = len(images)
        group = ImageGroup(images, 0, spec.prompt)
        return ImagesResult([group], spec.model, total_images=len(images), usage=usage)

    async def _one(self, spec: ImageSpec, parameters: dict[str, Any]) -> tuple[list[Image], Usage]:
        upstream = dashscope_upstream(self.env)
        body = {
            "model": spec.model,
            "input": {"messages": [{"role": "user", "content": [{"text": spec.prompt}]}]},
            "parameters": parameters,
        }
        data = await upstream.json("POST", PATH, json=body)
        check_native(upstream, data)
        urls = [
            part["image"]
            for choice in (data.get("output") or {}).get("choices") or []
            for part in (choice.get("message") or {}).get("content") or []
            if isinstance(part, dict) and part.get("image")
        ]
        if not urls:
            raise ProviderFailed(f"DashScope answered no image: {str(data)[:300]}")
        seed = int(parameters.get("seed") or 0)
        images = await run_all(self.env.images.fetch(url, seed) for url in urls)
        usage = data.get("usage") or {}
        return images, Usage(
            width=int(usage.get("width") or images[0].width),
            height=int(usage.get("height") or images[0].height),
        )
