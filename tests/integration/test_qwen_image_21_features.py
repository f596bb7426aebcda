"""What the Qwen-Image server does for 1.x, on Qwen-Image 2.1 and 2.1 Turbo (gRPC, in-process
servers on the tiny 2.1 pipelines): LoRA adapters (both pipelines carry diffusers'
QwenImageLoraLoaderMixin, and the tiny adapters fit the tiny 2.1 transformer's attention), previews
and a mid-run cancel on 2.1 (its `callback_on_step_end`), and on Turbo, whose modular pipeline has
no step callback, previews refused naming it and a cancel that drops a job that has not started.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image

from services.modelserver.service import ModelService
from services.modelserver.settings import MODELS_DIR, TINY_IMAGE_21_DIR, TINY_IMAGE_21_TURBO_DIR
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from services.tinymodels import qwen_image_21
from tests.integration.test_model_server_previews import summary
from tests.support.step_gate import StepGate
from tests.support.tiny_models import lora_folder


def pixels(image: common_pb2.Image) -> np.ndarray:
    decoded = Image.open(io.BytesIO(image.data))
    assert decoded.format == "PNG"
    return np.asarray(decoded.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def gate() -> StepGate:
    return StepGate()


async def _server(location: Path, loras: Path, gate: StepGate | None = None) -> ModelService:
    settings = QwenImageSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        location=str(location),
        lora_dir=str(loras),
        default_steps=3,
    )
    return await start(settings, step_hook=gate)


@pytest.fixture(scope="module")
async def server_21(gate: StepGate, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    qwen_image_21.build(MODELS_DIR)
    service = await _server(TINY_IMAGE_21_DIR, lora_folder(tmp_path_factory.mktemp("l21")), gate)
    yield service.address
    gate.release()
    await service.close(0)


@pytest.fixture(scope="module")
async def server_turbo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    qwen_image_21.build_turbo(MODELS_DIR)
    service = await _server(TINY_IMAGE_21_TURBO_DIR, lora_folder(tmp_path_factory.mktemp("lt")))
    yield service.address
    await service.close(0)


async def generate(address: str, **fields: object) -> common_pb2.Image:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse", width=64, height=96, seed=11, **fields
    )
    async with grpc.aio.insecure_channel(address) as channel:
        result = await qwen_image_pb2_grpc.ImageGenerationStub(channel).Generate(request)
    assert len(result.images) == 1
    return result.images[0]


async def lora_changes_the_picture_and_scale_0_gives_the_base_back(address: str) -> None:
    base = pixels(await generate(address))
    adapted = pixels(await generate(address, loras=[common_pb2.LoraRef(name="tiny-a")]))
    off = pixels(await generate(address, loras=[common_pb2.LoraRef(name="tiny-a", scale=0.0)]))
    assert adapted.shape == base.shape == (96, 64, 3)
    assert np.abs(adapted - base).mean() > 0.05, "the adapter did not reach the 2.1 transformer"
    assert np.array_equal(off, base)


async def test_a_lora_on_21_changes_the_picture_and_scale_0_gives_the_base_back(
    server_21: str,
) -> None:
    await lora_changes_the_picture_and_scale_0_gives_the_base_back(server_21)


async def test_a_lora_on_turbo_changes_the_picture_and_scale_0_gives_the_base_back(
    server_turbo: str,
) -> None:
    await lora_changes_the_picture_and_scale_0_gives_the_base_back(server_turbo)


async def test_an_unknown_lora_on_21_is_refused_listing_the_adapters(server_21: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(server_21, loras=[common_pb2.LoraRef(name="tiny-zzz")])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "tiny-a" in (caught.value.details() or "")


async def test_21_streams_its_steps_and_previews_of_the_asked_size(server_21: str) -> None:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse", width=64, height=96, num_inference_steps=4, partial_images=2,
        seed=3,
    )  # fmt: skip
    async with grpc.aio.insecure_channel(server_21) as channel:
        call = qwen_image_pb2_grpc.ImageGenerationStub(channel).GenerateStream(request)
        events = [event async for event in call]
    assert summary(events) == [
        "step 1", "partial 0@1", "step 2", "step 3", "partial 1@3", "step 4", "result",
    ]  # fmt: skip
    partials = [e.partial_image for e in events if e.WhichOneof("event") == "partial_image"]
    assert [pixels(p.image).shape for p in partials] == [(96, 64, 3)] * 2
    # A preview is the picture on its way: not the finished one, not blank.
    final = pixels(events[-1].result.images[0])
    assert np.abs(pixels(partials[0].image) - final).mean() > 0
    assert pixels(partials[0].image).std() > 0


async def test_a_cancel_mid_run_stops_21_at_the_next_step(server_21: str, gate: StepGate) -> None:
    """The client hangs up while its 2.1 job is in its first of 40 steps: the job stops at the end
    of that step and the pipeline serves the next call."""
    gate.arm()
    request = qwen_image_pb2.GenerateRequest(
        prompt="a long one", width=64, height=64, num_inference_steps=40, partial_images=1
    )
    async with grpc.aio.insecure_channel(server_21) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        call = stub.GenerateStream(request)
        job = await gate.wait_held()
        call.cancel()
        await asyncio.to_thread(job.cancelled.wait, 30)
        after = await stub.Generate(
            qwen_image_pb2.GenerateRequest(prompt="next", width=64, height=64, seed=1)
        )
    assert len(after.images) == 1
    assert job.cancelled.is_set()
    assert gate.steps_of(job) == [1]


async def test_turbo_refuses_previews_naming_itself(server_turbo: str) -> None:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse", width=64, height=96, partial_images=1
    )
    async with grpc.aio.insecure_channel(server_turbo) as channel:
        call = qwen_image_pb2_grpc.ImageGenerationStub(channel).GenerateStream(request)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [event async for event in call]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "partial_images" in details and "QwenImage21TurboModularPipeline" in details
