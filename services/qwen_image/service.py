"""The Qwen-Image server as a `ServerKind`: `start(settings)` for tests, `serve` for the process."""

from __future__ import annotations

from imagemesh.v1 import qwen_image_pb2_grpc

from services.modelserver.service import ServerKind
from services.qwen_image.generator import Generator
from services.qwen_image.servicer import SERVICE_NAME, GenerationServicer
from services.qwen_image.settings import QwenImageSettings

SERVER = ServerKind(
    name="qwen_image",
    service_name=SERVICE_NAME,
    env_prefix="QWEN_IMAGE_",
    settings_type=QwenImageSettings,
    generator=Generator,
    servicer=GenerationServicer,
    add_servicer=qwen_image_pb2_grpc.add_ImageGenerationServicer_to_server,
)
start = SERVER.start
serve = SERVER.serve
