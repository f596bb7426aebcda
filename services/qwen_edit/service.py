"""The Qwen-Image-Edit server as a `ServerKind`: `start(settings)` for tests, `serve` for the
process."""

from __future__ import annotations

from imagemesh.v1 import qwen_edit_pb2_grpc

from services.modelserver.service import ServerKind
from services.qwen_edit.generator import EditGenerator
from services.qwen_edit.servicer import SERVICE_NAME, EditingServicer
from services.qwen_edit.settings import QwenEditSettings

SERVER = ServerKind(
    name="qwen_edit",
    service_name=SERVICE_NAME,
    env_prefix="QWEN_IMAGE_EDIT_",
    settings_type=QwenEditSettings,
    generator=EditGenerator,
    servicer=EditingServicer,
    add_servicer=qwen_edit_pb2_grpc.add_ImageEditingServicer_to_server,
)
start = SERVER.start
serve = SERVER.serve
