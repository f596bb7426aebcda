"""Builds and runs the Qwen-Image server: settings in, a serving `MeshServer` out."""

from __future__ import annotations

import grpc
from imagemesh.v1 import qwen_image_pb2_grpc

from services.modelserver import service
from services.modelserver.jobs import StepHook
from services.qwen_image.generator import Generator
from services.qwen_image.servicer import SERVICE_NAME, GenerationServicer
from services.qwen_image.settings import QwenImageSettings


def _parts(
    settings: QwenImageSettings, step_hook: StepHook | None = None
) -> tuple[Generator, service.Register]:
    generator = Generator(settings, step_hook=step_hook)
    servicer = GenerationServicer(generator)

    def register(server: grpc.aio.Server) -> None:
        qwen_image_pb2_grpc.add_ImageGenerationServicer_to_server(servicer, server)

    return generator, register


async def start(
    settings: QwenImageSettings, step_hook: StepHook | None = None
) -> service.ModelService:
    """Listens, loads the pipeline, reports SERVING; the caller stops it with `close()`."""
    generator, register = _parts(settings, step_hook)
    return await service.start(settings, generator, register, SERVICE_NAME)


async def serve(settings: QwenImageSettings) -> None:
    generator, register = _parts(settings)
    await service.serve(settings, generator, register, SERVICE_NAME)
