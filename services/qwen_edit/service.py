"""Builds and runs the Qwen-Image-Edit server: settings in, a serving `MeshServer` out."""

from __future__ import annotations

import grpc
from imagemesh.v1 import qwen_edit_pb2_grpc

from services.modelserver import service
from services.modelserver.jobs import StepHook
from services.qwen_edit.generator import EditGenerator
from services.qwen_edit.servicer import SERVICE_NAME, EditingServicer
from services.qwen_edit.settings import QwenEditSettings


def _parts(
    settings: QwenEditSettings, step_hook: StepHook | None = None
) -> tuple[EditGenerator, service.Register]:
    generator = EditGenerator(settings, step_hook=step_hook)
    servicer = EditingServicer(generator)

    def register(server: grpc.aio.Server) -> None:
        qwen_edit_pb2_grpc.add_ImageEditingServicer_to_server(servicer, server)

    return generator, register


async def start(
    settings: QwenEditSettings, step_hook: StepHook | None = None
) -> service.ModelService:
    """Listens, loads the pipeline, reports SERVING; the caller stops it with `close()`."""
    generator, register = _parts(settings, step_hook)
    return await service.start(settings, generator, register, SERVICE_NAME)


async def serve(settings: QwenEditSettings) -> None:
    generator, register = _parts(settings)
    await service.serve(settings, generator, register, SERVICE_NAME)
