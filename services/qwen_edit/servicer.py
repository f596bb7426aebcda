"""gRPC `imagemesh.v1.ImageEditing`: maps messages to an `EditSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

from services.modelserver.protomap import output_format_name
from services.modelserver.servicing import Calls
from services.qwen_edit.generator import EditSpec, ImageSource

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


class EditingServicer(Calls, qwen_edit_pb2_grpc.ImageEditingServicer):
    def spec_from(self, request: qwen_edit_pb2.EditRequest) -> EditSpec:
        return spec_from(request)

    Edit = Calls.unary
    EditStream = Calls.stream
