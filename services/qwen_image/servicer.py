"""gRPC `imagemesh.v1.ImageGeneration`: maps messages to a `GenerateSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.servicing import Calls, sampling_fields
from services.qwen_image.generator import GenerateSpec, ImageSource

SERVICE_NAME = qwen_image_pb2.DESCRIPTOR.services_by_name["ImageGeneration"].full_name


def _source(request: qwen_image_pb2.GenerateRequest, name: str) -> ImageSource | None:
    if not request.HasField(name):
        return None
    image: common_pb2.ImageInput = getattr(request, name)
    return image.url if image.WhichOneof("source") == "url" else image.data


def spec_from(request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
    return GenerateSpec(
        **sampling_fields(request),
        image=_source(request, "image"),
        mask=_source(request, "mask"),
        strength=request.strength if request.HasField("strength") else None,
    )


class GenerationServicer(Calls, qwen_image_pb2_grpc.ImageGenerationServicer):
    def spec_from(self, request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
        return spec_from(request)

    Generate = Calls.unary
    GenerateStream = Calls.stream
