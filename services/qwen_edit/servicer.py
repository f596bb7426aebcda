"""gRPC `imagemesh.v1.ImageEditing`: maps messages to an `EditSpec` and back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

from services.modelserver.protomap import event_to_proto, output_format_name, result_to_proto
from services.qwen_edit.generator import EditGenerator, EditSpec, ImageSource

SERVICE_NAME = qwen_edit_pb2.DESCRIPTOR.services_by_name["ImageEditing"].full_name


def _source(image: common_pb2.ImageInput) -> ImageSource:
    return image.url if image.WhichOneof("source") == "url" else image.data


def spec_from(request: qwen_edit_pb2.EditRequest) -> EditSpec:
    return EditSpec(
        prompt=request.prompt,
        images=[_source(image) for image in request.images],
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_inference_steps=request.num_inference_steps,
        true_cfg_scale=request.true_cfg_scale if request.HasField("true_cfg_scale") else None,
        guidance_scale=request.guidance_scale if request.HasField("guidance_scale") else None,
        seed=request.seed if request.HasField("seed") else None,
        num_images=request.num_images,
        output_format=output_format_name(request.output_format),
        partial_images=request.partial_images,
        mask=_source(request.mask) if request.HasField("mask") else None,
    )


class EditingServicer(qwen_edit_pb2_grpc.ImageEditingServicer):
    def __init__(self, generator: EditGenerator) -> None:
        self._generator = generator

    async def Edit(
        self, request: qwen_edit_pb2.EditRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.GenerationResult:
        return result_to_proto(await self._generator.edit(spec_from(request)))

    async def EditStream(
        self, request: qwen_edit_pb2.EditRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.GenerationEvent]:
        async for event in self._generator.edit_stream(spec_from(request)):
            yield event_to_proto(event)
