"""Dynamic batching through a real Qwen-Image server on a free port: concurrent callers that
wait together share one pipeline call, and each still gets its own picture and its own stream."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY

from services.modelserver.service import ModelService
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.step_gate import StepGate
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models
from tests.support.waiting import eventually

STEPS = 3
SHAPE: dict[str, Any] = {"width": 64, "height": 64, "num_inference_steps": STEPS}
# Three callers of one shape (4 images in all, the server's MAX_BATCH_IMAGES): different
# prompts, negative prompts, seeds and image counts; the last one streams.
REQUESTS = [
    qwen_image_pb2.GenerateRequest(prompt="a red fox", negative_prompt="blur", seed=11, **SHAPE),
    qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse on a cliff at dusk with gulls",
        negative_prompt="dark, ugly, low quality",
        seed=22,
        num_images=2,
        **SHAPE,
    ),
    qwen_image_pb2.GenerateRequest(
        prompt="a teapot", negative_prompt="text", seed=33, partial_images=1, **SHAPE
    ),
]


@pytest.fixture(scope="module")
def gate() -> StepGate:
    return StepGate()


@pytest.fixture(scope="module")
async def server(gate: StepGate) -> AsyncIterator[ModelService]:
    ensure_tiny_models()
    settings = QwenImageSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        location=str(TINY_IMAGE_DIR),
        max_queue=8,
        max_batch_images=4,
        shutdown_grace_seconds=1,
    )
    service = await start(settings, step_hook=gate)
    yield service
    gate.release()
    await service.close(0)


def pixels(image: common_pb2.Image) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"), dtype=np.int16)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"server": "qwen_image"}) or 0.0


async def test_concurrent_callers_share_a_call_and_keep_their_own_pictures(
    server: ModelService, gate: StepGate
) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        alone = [await stub.Generate(r) for r in REQUESTS]  # one at a time: nothing waits

        calls_before = metric("imagemesh_modelserver_batch_images_count")
        images_before = metric("imagemesh_modelserver_batch_images_sum")
        delivered_before = metric("imagemesh_modelserver_images_total")
        gate.arm()
        blocker = asyncio.ensure_future(
            stub.Generate(qwen_image_pb2.GenerateRequest(prompt="hold", seed=1, **SHAPE))
        )
        await gate.wait_held()
        unary = [asyncio.ensure_future(stub.Generate(r)) for r in REQUESTS[:2]]
        events: list[common_pb2.GenerationEvent] = []

        async def read_stream() -> None:
            async for event in stub.GenerateStream(REQUESTS[2]):
                events.append(event)

        streamed = asyncio.ensure_future(read_stream())
        queue = server.generator.runner.queue  # type: ignore[attr-defined]
        await eventually(lambda: queue.waiting == 3, 30, "the three callers queued")
        gate.release()
        await blocker
        together = [await call for call in unary]
        await streamed

    # One call for the blocker, one for all three callers' four images.
    assert metric("imagemesh_modelserver_batch_images_count") - calls_before == 2
    assert metric("imagemesh_modelserver_batch_images_sum") - images_before == 1 + 4
    assert metric("imagemesh_modelserver_images_total") - delivered_before == 1 + 4

    result = events[-1].result
    for own, solo in zip([*together, result], alone, strict=True):
        assert [i.seed for i in own.images] == [i.seed for i in solo.images]
        for mine, reference in zip(own.images, solo.images, strict=True):
            assert np.abs(pixels(mine) - pixels(reference)).max() <= 1  # within 1/255

    # The streamed caller's own events: its queue position, its steps, its one preview.
    progress = [
        (e.progress.step, e.progress.queue_position) for e in events if e.HasField("progress")
    ]
    assert progress[0][1] > 0  # it waited behind the blocker
    assert [step for step, _ in progress if step] == list(range(1, STEPS + 1))
    partial = [e.partial_image for e in events if e.HasField("partial_image")]
    assert [(p.step, p.partial_image_index, p.image.seed) for p in partial] == [(2, 0, 33)]
