"""gRPC `imagemesh.v1.ImageGeneration`: maps messages to a `GenerateSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.servicing import Calls, sampling_fields
from services.qwen_image.generator import GenerateSpec

SERVICE_NAME = qwen_image_pb2.DESCRIPTOR.services_by_name["ImageGeneration"].full_name


def spec_from(request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
    return GenerateSpec(**sampling_fields(request))


class GenerationServicer(Calls, qwen_image_pb2_grpc.ImageGenerationServicer):
    def spec_from(self, request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
        return spec_from(request)

    Generate = Calls.unary
    GenerateStream = Calls.stream
