"""Mapping between the `imagemesh.v1` provider messages and the plain types adapters use."""

from __future__ import annotations

import time
from typing import Any

from google.protobuf import json_format, struct_pb2
from imagemesh.v1 import common_pb2, providers_pb2

from services.providers.rewrite import Rewrite
from services.providers.types import (
    ChatDelta,
    ChatImage,
    ChatMessage,
    ChatPart,
    ChatResult,
    ChatSpec,
    EditSpec,
    ImageInput,
    ImageSpec,
    ImagesResult,
    ModelInfo,
    Usage,
)


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: give whole numbers back as ints (imgCount: 1, not 1.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return _integral(json_format.MessageToDict(struct))


def _image(image: providers_pb2.ChatImage) -> ChatImage:
    return ChatImage(url=image.url, detail=image.detail)


def chat_spec(request: providers_pb2.ChatRequest) -> ChatSpec:
    messages = [
        ChatMessage(
            role=m.role,
            parts=[
                ChatPart(image=_image(p.image)) if p.HasField("image") else ChatPart(text=p.text)
                for p in m.content
            ],
        )
        for m in request.messages
    ]
    return ChatSpec(
        model=request.model,
        messages=messages,
        system_prompt=request.system_prompt,
        prompt=request.prompt,
        images=[_image(i) for i in request.images],
        # float32 on the wire: 0.7 arrives as 0.699999988; send the value the caller meant.
        temperature=round(request.temperature, 6) if request.HasField("temperature") else None,
        max_tokens=request.max_tokens if request.HasField("max_tokens") else None,
        extra=struct_to_dict(request.extra),
    )


def _inputs(images: Any) -> list[ImageInput]:
    return [ImageInput(data=i.data, url=i.url) for i in images]


def image_spec(request: providers_pb2.ProviderImageRequest) -> ImageSpec:
    return ImageSpec(
        model=request.model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        n=request.n,
        seed=request.seed if request.HasField("seed") else None,
        steps=request.num_inference_steps,
        guidance_scale=(
            round(request.guidance_scale, 6) if request.HasField("guidance_scale") else None
        ),
        images=_inputs(request.images),
        prompt_extend=request.prompt_extend,
        watermark=request.watermark,
        extra=struct_to_dict(request.extra),
    )


def edit_spec(request: providers_pb2.ProviderEditRequest) -> EditSpec:
    return EditSpec(
        model=request.model,
        images=_inputs(request.images),
        masks=_inputs(request.masks),
        prompt=request.prompt,
        prompts=list(request.prompts),
        n=request.n,
        size=request.size,
        extra=struct_to_dict(request.extra),
    )


def usage_proto(usage: Usage | None) -> common_pb2.Usage | None:
    if usage is None:
        return None
    return common_pb2.Usage(
        width=usage.width,
        height=usage.height,
        image_count=usage.image_count,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def chat_response(result: ChatResult) -> providers_pb2.ChatResponse:
    return providers_pb2.ChatResponse(
        id=result.id,
        text=result.text,
        model=result.model,
        usage=usage_proto(result.usage),
        finish_reason=result.finish_reason,
        stream=result.stream,
        reasoning=result.reasoning,
    )


def chat_chunk(delta: ChatDelta) -> providers_pb2.ChatChunk:
    return providers_pb2.ChatChunk(
        delta=delta.text,
        reasoning=delta.reasoning,
        finish_reason=delta.finish_reason,
        usage=usage_proto(delta.usage),
        model=delta.model,
        id=delta.id,
    )


def images_response(result: ImagesResult) -> providers_pb2.ProviderImagesResponse:
    created = result.created or int(time.time())
    return providers_pb2.ProviderImagesResponse(
        results=[
            providers_pb2.ProviderImageGroup(
                original_index=group.original_index,
                prompt=group.prompt,
                actual_prompt=group.actual_prompt,
                created=group.created or created,
                images=[
                    common_pb2.Image(
                        data=img.data,
                        mime_type=img.mime_type,
                        width=img.width,
                        height=img.height,
                        seed=img.seed,
                    )
                    for img in group.images
                ],
            )
            for group in result.results
        ],
        model=result.model,
        created=created,
        total_images=result.total_images,
        images_per_edit=result.images_per_edit,
        usage=usage_proto(result.usage),
        warnings=result.warnings,
    )


def models_response(models: list[ModelInfo]) -> providers_pb2.ListModelsResponse:
    return providers_pb2.ListModelsResponse(
        models=[
            providers_pb2.ProviderModel(
                name=m.name,
                provider=m.provider,
                task_type=m.task_type,
                kind=m.kind,
                ready=m.ready,
                reason=m.reason,
                capabilities=m.capabilities,
            )
            for m in models
        ]
    )


def rewrite_response(rewrite: Rewrite) -> providers_pb2.RewritePromptResponse:
    return providers_pb2.RewritePromptResponse(
        orig_prompt=rewrite.orig_prompt,
        actual_prompt=rewrite.actual_prompt,
        rewritten=rewrite.rewritten,
        model=rewrite.model,
        language=rewrite.language,
        reason=rewrite.reason,
    )
