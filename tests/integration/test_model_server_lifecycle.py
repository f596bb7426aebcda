"""Model servers' life cycle: NOT_SERVING while loading, `python -m` processes that serve and
drain on SIGTERM, and a load failure that exits non-zero naming the location."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver import service
from services.qwen_image.generator import Generator
from services.qwen_image.servicer import SERVICE_NAME, GenerationServicer
from services.qwen_image.settings import QwenImageSettings
from tests.support.ports import free_port
from tests.support.processes import ROOT, ServiceProcess, grpc_serving
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models

REQUEST = qwen_image_pb2.GenerateRequest(
    prompt="a lighthouse", width=64, height=64, num_inference_steps=2, seed=3
)


async def test_not_serving_and_unavailable_while_the_pipeline_loads() -> None:
    ensure_tiny_models()
    port = free_port()
    settings = QwenImageSettings(
        listen=f"127.0.0.1:{port}", metrics_listen="", location=str(TINY_IMAGE_DIR)
    )
    generator = Generator(settings)
    may_load = asyncio.Event()
    real_load = generator.load

    async def slow_load() -> None:
        await may_load.wait()
        await real_load()

    generator.load = slow_load  # type: ignore[method-assign]

    def register(server: grpc.aio.Server) -> None:
        qwen_image_pb2_grpc.add_ImageGenerationServicer_to_server(
            GenerationServicer(generator), server
        )

    starting = asyncio.ensure_future(service.start(settings, generator, register, SERVICE_NAME))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        before = await health.Check(check, wait_for_ready=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await qwen_image_pb2_grpc.ImageGenerationStub(channel).Generate(REQUEST)
        may_load.set()
        running = await starting
        after = await health.Check(check)
        result = await qwen_image_pb2_grpc.ImageGenerationStub(channel).Generate(REQUEST)
    await running.close(0)
    assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "still loading" in (caught.value.details() or "")
    assert after.status == health_pb2.HealthCheckResponse.SERVING
    assert len(result.images) == 1


def test_python_m_qwen_image_serves_and_drains_on_sigterm() -> None:
    """SIGTERM while a call runs: health turns NOT_SERVING, the call still finishes, exit 0."""
    ensure_tiny_models()
    target = f"127.0.0.1:{free_port()}"
    process = ServiceProcess.module(
        "qwen_image-lifecycle",
        "services.qwen_image",
        env={"QWEN_IMAGE_LISTEN": target, "QWEN_IMAGE_METRICS_LISTEN": ""},
        ready=lambda: grpc_serving(target, SERVICE_NAME),
        ready_timeout=120,
    ).start()
    try:
        with grpc.insecure_channel(target) as channel:
            stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
            stream = stub.GenerateStream(
                qwen_image_pb2.GenerateRequest(
                    prompt="a lighthouse", width=128, height=128, num_inference_steps=30, seed=3
                ),
                timeout=120,
            )
            events = iter(stream)
            while next(events).progress.step < 1:  # running now
                pass
            process.signal(signal.SIGTERM)
            rest = list(events)
        assert rest[-1].result.images[0].data.startswith(b"\x89PNG")
        assert process.proc is not None and process.proc.wait(timeout=60) == 0
    finally:
        process.kill()


def test_a_load_failure_exits_non_zero_naming_the_location() -> None:
    missing = "/nonexistent/imagemesh-weights"
    runs = {}
    for module, prefix in (
        ("services.qwen_image", "QWEN_IMAGE_"),
        ("services.qwen_edit", "QWEN_IMAGE_EDIT_"),
    ):
        env = {
            **os.environ,
            f"{prefix}LOCATION": missing,
            f"{prefix}LISTEN": f"127.0.0.1:{free_port()}",
            f"{prefix}METRICS_LISTEN": "",
        }
        # Both at once: each pays for importing torch.
        runs[module] = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
    for module, process in runs.items():
        _, stderr = process.communicate(timeout=120)
        assert process.returncode != 0, module
        assert f"cannot load pipeline from {missing}" in stderr, (module, stderr[-2000:])
