"""gRPC `imagemesh.v1.ImageGeneration`: maps messages to a `GenerateSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.controlnets import ControlRef
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
        controls=tuple(_control(control) for control in request.controls),
        control_guidance_start=_optional(request, "control_guidance_start"),
        control_guidance_end=_optional(request, "control_guidance_end"),
    )


def _optional(request: qwen_image_pb2.GenerateRequest, name: str) -> float | None:
    return getattr(request, name) if request.HasField(name) else None


def _control(control: common_pb2.ControlInput) -> ControlRef:
    image: bytes | str | None = None
    if control.HasField("image"):
        source = control.image
        image = source.url if source.WhichOneof("source") == "url" else source.data
    scale = control.conditioning_scale if control.HasField("conditioning_scale") else None
    return ControlRef(image, control.controlnet, scale)


class GenerationServicer(Calls, qwen_image_pb2_grpc.ImageGenerationServicer):
    takes_controls = True

    def spec_from(self, request: qwen_image_pb2.GenerateRequest) -> GenerateSpec:
        return spec_from(request)

    Generate = Calls.unary
    GenerateStream = Calls.stream
