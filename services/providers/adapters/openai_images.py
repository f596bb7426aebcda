"""gpt-image-1 (`gpt-image-1`, seed 000): batch edits, and text-to-image generations.

A batch edit is one `POST /images/edits` (multipart) per input image, run concurrently: image i
gets mask i and prompt i when given (per-image `prompts` win over `prompt`), and `n` variants.
The answer follows seed 000: `results[].original_index / prompt / images`, `total_images` (input
images edited), `images_per_edit` (n). gpt-image-1 always answers base64 (`data[].b64_json`);
`response_format` is a DALL-E field it rejects, so it is never sent (the gateway handles the
caller's `response_format`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

from services.common.errors import InvalidArgument, ProviderFailed
from services.providers.adapter import Adapter
from services.providers.adapters._openai_http import openai_missing, openai_upstream
from services.providers.batch import run_all
from services.providers.images import sniff_mime, to_image
from services.providers.registry import register_adapter
from services.providers.types import (
    EditSpec,
    Image,
    ImageGroup,
    ImageSpec,
    ImagesResult,
    Usage,
)

log = logging.getLogger("imagemesh.providers.openai")

SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
MAX_BATCH = 16
# Fields the adapter sets itself, and DALL-E-only ones gpt-image-1 answers with a 400.
RESERVED = frozenset({"model", "prompt", "n", "size", "image", "mask", "response_format"})
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def _check_size(size: str) -> str:
    if size not in SIZES:
        raise InvalidArgument(
            f"size: {size!r} is not offered by gpt-image-1; use {', '.join(SIZES)}"
        )
    return size


def _check_n(n: int) -> int:
    n = n or 1
    if not 1 <= n <= 10:
        raise InvalidArgument(f"n: {n}; gpt-image-1 makes 1 to 10 images per request")
    return n


def _extra_fields(extra: dict[str, Any]) -> dict[str, Any]:
    if "response_format" in extra:
        log.info("response_format is not sent to gpt-image-1 (it always answers b64_json)")
    return {k: v for k, v in extra.items() if k not in RESERVED}


def _check_lengths(spec: EditSpec) -> list[str]:
    """The prompt of each image; INVALID_ARGUMENT naming the lists when lengths differ."""
    count = len(spec.images)
    if count == 0:
        raise InvalidArgument("images: give at least one image to edit")
    if count > MAX_BATCH:
        raise InvalidArgument(f"images: {count} given; at most {MAX_BATCH} per batch")
    if spec.masks and len(spec.masks) != count:
        raise InvalidArgument(
            f"masks has {len(spec.masks)} items and images has {count}: "
            "give one mask per image, or no masks"
        )
    if spec.prompts:
        if len(spec.prompts) != count:
            raise InvalidArgument(
                f"prompts has {len(spec.prompts)} items and images has {count}: "
                "give one prompt per image, or one prompt for all"
            )
        for i, prompt in enumerate(spec.prompts):
            if not prompt.strip():
                raise InvalidArgument(f"prompts[{i}] is empty")
        return list(spec.prompts)
    if not spec.prompt.strip():
        raise InvalidArgument("prompt: give a prompt, or prompts (one per image)")
    return [spec.prompt] * count


@register_adapter("gpt-image-1")
class GptImage1(Adapter):
    provider = "openai"
    models = ("gpt-image-1",)
    kind = "edit"

    def missing_config(self) -> str | None:
        return openai_missing(self.env)

    async def edit(self, spec: EditSpec) -> ImagesResult:
        prompts = _check_lengths(spec)
        n = _check_n(spec.n)
        size = _check_size(spec.size or "1024x1024")
        images = await run_all(
            self.env.images.load(img, f"images[{i}]") for i, img in enumerate(spec.images)
        )
        masks = await run_all(
            self.env.images.load(m, f"masks[{i}]") for i, m in enumerate(spec.masks)
        )
        for i, mask in enumerate(masks):
            if sniff_mime(mask) != "image/png":
                raise InvalidArgument(f"masks[{i}]: a mask must be a PNG with an alpha channel")
        for i, data in enumerate(images):
            if sniff_mime(data) not in EXTENSIONS:
                raise InvalidArgument(f"images[{i}]: gpt-image-1 takes PNG, JPEG or WebP")
        fields = {**_extra_fields(spec.extra), "n": n, "size": size}
        groups = await run_all(
            self._edit_one(i, data, masks[i] if masks else None, prompts[i], fields, spec.model)
            for i, data in enumerate(images)
        )
        return _result(spec.model, groups, images_per_edit=n, total=len(groups))

    async def _edit_one(
        self,
        index: int,
        image: bytes,
        mask: bytes | None,
        prompt: str,
        fields: dict[str, Any],
        model: str,
    ) -> tuple[ImageGroup, Usage | None]:
        mime = sniff_mime(image) or "image/png"
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            ("image", (f"image.{EXTENSIONS[mime]}", image, mime))
        ]
        if mask is not None:
            files.append(("mask", ("mask.png", mask, "image/png")))
        data = {k: str(v) for k, v in {**fields, "model": model, "prompt": prompt}.items()}
        answer = await openai_upstream(self.env).json(
            "POST", "/images/edits", data=data, files=files
        )
        return _group(answer, index, prompt)

    async def generate(self, spec: ImageSpec) -> ImagesResult:
        if not spec.prompt.strip():
            raise InvalidArgument("prompt: give a prompt")
        n = _check_n(spec.n)
        size = "auto"
        if spec.width or spec.height:
            size = _check_size(f"{spec.width}x{spec.height}")
        body = {**_extra_fields(spec.extra), "model": spec.model, "prompt": spec.prompt}
        body.update(n=n, size=size)
        answer = await openai_upstream(self.env).json("POST", "/images/generations", json=body)
        group = _group(answer, 0, spec.prompt)
        return _result(spec.model, [group], images_per_edit=0, total=len(group[0].images))


def _group(answer: dict[str, Any], index: int, prompt: str) -> tuple[ImageGroup, Usage | None]:
    images: list[Image] = []
    for item in answer.get("data") or []:
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not b64:
            raise ProviderFailed("OpenAI answered an image without b64_json")
        try:
            images.append(to_image(base64.b64decode(b64)))
        except (binascii.Error, ValueError) as exc:
            raise ProviderFailed("OpenAI answered b64_json that is not base64") from exc
    if not images:
        raise ProviderFailed("OpenAI answered no images")
    created = int(answer.get("created") or time.time())
    usage = answer.get("usage")
    tokens = None
    if isinstance(usage, dict):
        tokens = Usage(
            prompt_tokens=int(usage.get("input_tokens") or 0),
            completion_tokens=int(usage.get("output_tokens") or 0),
            total_tokens=int(usage.get("total_tokens") or 0),
        )
    return ImageGroup(images, index, prompt, created=created), tokens


def _result(
    model: str, groups: list[tuple[ImageGroup, Usage | None]], images_per_edit: int, total: int
) -> ImagesResult:
    results = [g for g, _ in groups]
    made = [img for g in results for img in g.images]
    usage = Usage(width=made[0].width, height=made[0].height, image_count=len(made))
    for _, tokens in groups:
        if tokens is not None:
            usage.prompt_tokens += tokens.prompt_tokens
            usage.completion_tokens += tokens.completion_tokens
            usage.total_tokens += tokens.total_tokens
    return ImagesResult(
        results=results,
        model=model,
        created=max(g.created for g in results),
        total_images=total,
        images_per_edit=images_per_edit,
        usage=usage,
    )
