"""gRPC `imagemesh.v1.ImageEditing`: maps messages to an `EditSpec` and back."""

from __future__ import annotations

from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

from services.modelserver.servicing import Calls, sampling_fields
from services.qwen_edit.generator import EditSpec, ImageSource
from services.qwen_edit.layered import LAYERED_FIELDS, LayeredKnobs

SERVICE_NAME = qwen_edit_pb2.DESCRIPTOR.services_by_name["ImageEditing"].full_name


def _source(image: common_pb2.ImageInput) -> ImageSource:
    return image.url if image.WhichOneof("source") == "url" else image.data


def spec_from(request: qwen_edit_pb2.EditRequest) -> EditSpec:
    return EditSpec(
        **sampling_fields(request),
        images=[_source(image) for image in request.images],
        mask=_source(request.mask) if request.HasField("mask") else None,
        strength=request.strength if request.HasField("strength") else None,
        layered=LayeredKnobs(
            **{
                name: getattr(request, name) if request.HasField(name) else None
                for name in LAYERED_FIELDS
            }
        ),
    )


class EditingServicer(Calls, qwen_edit_pb2_grpc.ImageEditingServicer):
    def spec_from(self, request: qwen_edit_pb2.EditRequest) -> EditSpec:
        return spec_from(request)

    Edit = Calls.unary
    EditStream = Calls.stream
