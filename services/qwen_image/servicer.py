"""gRPC `imagemesh.v1.ImageGeneration`: maps messages to a `GenerateSpec` and back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.protomap import event_to_proto, output_format_name, result_to_proto
from services.qwen_image.generator import GenerateSpec, Generator

SERVICE_NAME = qwen_image_pb2.DESCRIPTOR.services_by_name["ImageGeneration"].full_name


def spec_from(request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
    return GenerateSpec(
        prompt=request.prompt,
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
    )


class GenerationServicer(qwen_image_pb2_grpc.ImageGenerationServicer):
    def __init__(self, generator: Generator) -> None:
        self._generator = generator

    async def Generate(
        self, request: qwen_image_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.GenerationResult:
        return result_to_proto(await self._generator.generate(spec_from(request)))

    async def GenerateStream(
        self, request: qwen_image_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.GenerationEvent]:
        async for event in self._generator.generate_stream(spec_from(request)):
            yield event_to_proto(event)
