"""The Qwen-Image server on the tiny pipeline, over a real gRPC channel on a free port."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image

from services.modelserver.service import ModelService
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.step_gate import StepGate
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models
from tests.support.waiting import eventually

MAX_QUEUE = 1


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
        max_queue=MAX_QUEUE,
        shutdown_grace_seconds=1,
    )
    service = await start(settings, step_hook=gate)
    yield service
    gate.release()
    await service.close(0)


@pytest.fixture(scope="module")
async def stub(server: ModelService) -> AsyncIterator[qwen_image_pb2_grpc.ImageGenerationStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield qwen_image_pb2_grpc.ImageGenerationStub(channel)


def request(**fields: Any) -> qwen_image_pb2.GenerateRequest:
    base: dict[str, Any] = {"prompt": "a red fox in the snow", "width": 64, "height": 64}
    base["num_inference_steps"] = 2
    return qwen_image_pb2.GenerateRequest(**{**base, **fields})


def decoded(image: common_pb2.Image) -> Image.Image:
    picture = Image.open(io.BytesIO(image.data))
    assert picture.format == "PNG" and image.mime_type == "image/png"
    return picture


async def test_health_says_serving(server: ModelService) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="imagemesh.v1.ImageGeneration")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_generate_returns_pngs_of_the_requested_size_and_count(stub) -> None:  # type: ignore[no-untyped-def]
    result = await stub.Generate(request(width=256, height=128, num_images=3, seed=41))
    assert [decoded(image).size for image in result.images] == [(256, 128)] * 3
    assert [(i.width, i.height, i.seed) for i in result.images] == [
        (256, 128, s) for s in (41, 42, 43)
    ]
    assert (result.usage.width, result.usage.height, result.usage.image_count) == (256, 128, 3)
    assert result.model == str(TINY_IMAGE_DIR) and result.elapsed_seconds > 0


async def test_the_same_seed_gives_the_same_bytes(stub) -> None:  # type: ignore[no-untyped-def]
    first = await stub.Generate(request(seed=1234))
    again = await stub.Generate(request(seed=1234))
    other = await stub.Generate(request(seed=1235))
    assert first.images[0].data == again.images[0].data
    assert first.images[0].data != other.images[0].data


async def test_without_a_seed_the_server_picks_one_and_says_which(stub) -> None:  # type: ignore[no-untyped-def]
    picked = await stub.Generate(request())
    seed = picked.images[0].seed
    assert seed > 0
    again = await stub.Generate(request(seed=seed))
    assert again.images[0].data == picked.images[0].data


async def test_other_output_formats(stub) -> None:  # type: ignore[no-untyped-def]
    result = await stub.Generate(request(output_format=common_pb2.OUTPUT_FORMAT_JPEG))
    assert result.images[0].mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(result.images[0].data)).format == "JPEG"


INVALID = {
    "empty prompt": ({"prompt": ""}, "prompt: must not be empty"),
    "width not a multiple of 16": ({"width": 100}, "width: 100 is not a multiple of 16"),
    "height too small": ({"height": 32}, "height: 32 is outside 64..2048"),
    "height too large": ({"height": 4096}, "height: 4096 is outside 64..2048"),
    "one step": ({"num_inference_steps": 1}, "num_inference_steps: 1 is outside 2..100"),
    "too many steps": ({"num_inference_steps": 101}, "num_inference_steps: 101 is outside"),
    "too many images": ({"num_images": 5}, "num_images: 5 is outside 1..4"),
    "negative images": ({"num_images": -2}, "num_images: -2 is outside 1..4"),
    "negative seed": ({"seed": -5}, "seed: -5 is outside"),
    "unknown format": ({"output_format": 9}, "output_format: OutputFormat(9) is not supported"),
    "nan guidance": ({"true_cfg_scale": float("nan")}, "true_cfg_scale: nan is outside"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_input_is_refused_and_the_server_still_serves(stub, case: str) -> None:  # type: ignore[no-untyped-def]
    fields, message = INVALID[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(request(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    assert len((await stub.Generate(request(seed=1))).images) == 1


async def test_a_full_queue_answers_resource_exhausted_at_once(stub, server, gate) -> None:  # type: ignore[no-untyped-def]
    queue = server.generator.runner.queue
    gate.arm()
    running = asyncio.ensure_future(stub.Generate(request(seed=1)))
    await gate.wait_held()
    waiting = asyncio.ensure_future(stub.Generate(request(seed=2)))
    await eventually(lambda: queue.waiting == MAX_QUEUE, 30, "the second call to queue")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(request(seed=3))
    gate.release()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"queue full: {MAX_QUEUE} waiting" in (caught.value.details() or "")
    assert len((await running).images) == 1 and len((await waiting).images) == 1


@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
async def test_a_cancelled_call_stops_at_the_next_step_and_frees_the_pipeline(
    stub,
    gate,
    method: str,  # type: ignore[no-untyped-def]
) -> None:
    gate.arm()
    call = getattr(stub, method)(request(num_inference_steps=50, seed=9))
    job = await gate.wait_held()
    call.cancel()
    if method == "Generate":
        with pytest.raises(asyncio.CancelledError):
            await call
    result = await stub.Generate(request(seed=10))
    assert len(result.images) == 1
    assert job.cancelled.is_set()
    assert gate.steps_of(job) == [1]  # 1 of 50 steps ran: stopped at the next step


async def test_a_call_whose_deadline_passes_in_the_queue_is_dropped(stub, server, gate) -> None:  # type: ignore[no-untyped-def]
    queue = server.generator.runner.queue
    gate.arm()
    running = asyncio.ensure_future(stub.Generate(request(seed=1)))
    held = await gate.wait_held()
    expiring = stub.Generate(request(seed=2), timeout=1.5)
    await eventually(lambda: queue.waiting == 1, 30, "the call with a deadline to queue")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await expiring
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: queue.waiting == 0, 30, "the expired call to leave the queue")
    gate.release()
    await running
    probe = await stub.Generate(request(seed=3))
    assert len(probe.images) == 1
    ran = {id(job) for job, _ in gate.steps[gate.steps.index((held, 1)) :]}
    assert len(ran) == 2  # the held job and the probe; the expired call never ran


async def test_stream_reports_queue_position_then_steps_then_the_images(stub, gate) -> None:  # type: ignore[no-untyped-def]
    gate.arm()
    running = asyncio.ensure_future(stub.Generate(request(seed=1)))
    await gate.wait_held()
    stream = stub.GenerateStream(request(num_inference_steps=3, seed=5, num_images=2))
    events = [await stream.read()]
    gate.release()
    while (event := await stream.read()) != grpc.aio.EOF:
        events.append(event)
    await running
    progress = [
        (e.progress.queue_position, e.progress.step, e.progress.total_steps)
        for e in events
        if e.WhichOneof("event") == "progress"
    ]
    assert progress == [(1, 0, 3), (0, 0, 3), (0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert events[-1].WhichOneof("event") == "result"
    assert [decoded(i).size for i in events[-1].result.images] == [(64, 64)] * 2
