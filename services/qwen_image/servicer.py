"""gRPC `imagemesh.v1.ImageGeneration`: maps messages to a `GenerateSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.protomap import output_format_name
from services.modelserver.servicing import Calls
from services.qwen_image.generator import GenerateSpec

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


class GenerationServicer(Calls, qwen_image_pb2_grpc.ImageGenerationServicer):
    def spec_from(self, request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
        return spec_from(request)

    Generate = Calls.unary
    GenerateStream = Calls.stream
