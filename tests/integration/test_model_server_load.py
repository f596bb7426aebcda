"""What a model server says of its load, for the gateway's routing: the `Load` RPC and the
`imagemesh-load` trailer on every answer, and the not-started mark on refusals given before a
job was queued (still loading, queue full), over a real gRPC channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from imagemesh.v1 import common_pb2, common_pb2_grpc, qwen_image_pb2, qwen_image_pb2_grpc

from services.common import loadreport
from services.common.loadreport import Load, Pace
from services.modelserver import service
from services.modelserver.service import ModelService
from services.qwen_image.generator import Generator
from services.qwen_image.service import start
from services.qwen_image.servicer import SERVICE_NAME, GenerationServicer
from services.qwen_image.settings import QwenImageSettings
from tests.support.ports import free_port
from tests.support.step_gate import StepGate
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models
from tests.support.waiting import eventually


def counts(read: tuple[Load | None, bool]) -> tuple[tuple[int, int, int | None], bool]:
    """A trailer's (queued, running, steps) and not-started mark, without the timed pace."""
    load, not_started = read
    assert load is not None
    return (load.queued, load.running, load.steps), not_started


def request(n: int = 1) -> qwen_image_pb2.GenerateRequest:
    return qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse", width=64, height=64, num_inference_steps=2, num_images=n, seed=5
    )


@pytest.fixture
async def held() -> AsyncIterator[tuple[ModelService, StepGate, grpc.aio.Channel]]:
    ensure_tiny_models()
    gate = StepGate()
    settings = QwenImageSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        location=str(TINY_IMAGE_DIR),
        max_queue=1,
        max_batch_images=1,
    )
    server = await start(settings, step_hook=gate)
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield server, gate, channel
    gate.release()
    await server.close(0)


async def test_load_and_trailers_follow_the_queue(held) -> None:  # type: ignore[no-untyped-def]
    server, gate, channel = held
    info = common_pb2_grpc.ModelServerStub(channel)
    images = qwen_image_pb2_grpc.ImageGenerationStub(channel)
    idle = await info.Load(common_pb2.LoadRequest())
    assert (idle.queued_images, idle.running_images, idle.serving, idle.max_queue) == (
        0,
        0,
        True,
        1,
    )

    gate.arm()
    running = images.Generate(request(n=2))
    await gate.wait_held()
    waiting = images.Generate(request(n=3))

    async def queued() -> common_pb2.LoadResponse | None:
        answer = await info.Load(common_pb2.LoadRequest())
        return answer if answer.queued_jobs == 1 else None

    busy = await eventually(queued, 30, "the second job queued")
    # Steps left, image by image: 3 x 2 waiting, 2 x 1 of the running call held in its step 1.
    assert (busy.queued_images, busy.running_images, busy.remaining_steps) == (3, 2, 8)

    # The queue is full: refused before it was queued, and the answer says so, with the load.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await images.Generate(request())
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert loadreport.read(refused.value.trailing_metadata()) == (Load(3, 2, 8), True)

    gate.release()
    await running
    first = loadreport.read(await running.trailing_metadata())
    await waiting
    last = loadreport.read(await waiting.trailing_metadata())
    # As each call ended: the second job waiting or already running; then nothing.
    assert counts(first) in (((3, 0, 6), False), ((0, 3, 6), False))
    assert counts(last) == ((0, 0, 0), False)
    # Timed calls ran: the pace rides along, and an idle queue predicts nothing left.
    assert last[0] is not None and last[0].pace is not None and last[0].ms == 0
    assert last[0].pace.step_ms > 0


async def test_after_a_timed_call_load_predicts_the_drain_time_at_its_pace(held) -> None:  # type: ignore[no-untyped-def]
    _, gate, channel = held
    info = common_pb2_grpc.ModelServerStub(channel)
    images = qwen_image_pb2_grpc.ImageGenerationStub(channel)
    untimed = await info.Load(common_pb2.LoadRequest())
    assert (untimed.step_ms, untimed.call_ms, untimed.remaining_ms) == (0, 0, 0)
    await images.Generate(request())  # 2 steps: one step time measured

    gate.arm()
    running = images.Generate(request(n=2))
    await gate.wait_held()
    waiting = images.Generate(request(n=3))

    async def queued() -> common_pb2.LoadResponse | None:
        answer = await info.Load(common_pb2.LoadRequest())
        return answer if answer.queued_jobs == 1 else None

    busy = await eventually(queued, 30, "the second job queued")
    gate.release()
    await running
    await waiting
    assert busy.step_ms > 0 and busy.call_ms >= 0
    # The waiting call (3 images x 2 steps) whole, and at least the running call's last step
    # of 2 images: the prediction counts them at the measured pace.
    pace = Pace(busy.step_ms, busy.call_ms)
    assert busy.remaining_ms >= round(pace.cost(6) + pace.cost(2, calls=0)) - 1


async def test_a_stream_ends_with_the_load_too(held) -> None:  # type: ignore[no-untyped-def]
    _, _, channel = held
    call = qwen_image_pb2_grpc.ImageGenerationStub(channel).GenerateStream(request())
    events = [event async for event in call]
    assert events[-1].HasField("result")
    assert counts(loadreport.read(await call.trailing_metadata())) == ((0, 0, 0), False)


async def test_while_loading_load_says_not_serving_and_calls_are_marked_not_started() -> None:
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
        info = common_pb2_grpc.ModelServerStub(channel)
        loading = await info.Load(common_pb2.LoadRequest(), wait_for_ready=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await qwen_image_pb2_grpc.ImageGenerationStub(channel).Generate(request())
        may_load.set()
        running = await starting
        loaded = await info.Load(common_pb2.LoadRequest())
    await running.close(0)
    assert loading.serving is False and loaded.serving is True
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert loadreport.read(caught.value.trailing_metadata()) == (Load(0, 0, 0), True)


def test_the_trailer_format() -> None:
    assert loadreport.parse_load("queued=3,running=4,steps=20") == Load(3, 4, 20)
    assert loadreport.parse_load("queued=3,running=4") == Load(3, 4, None)  # steps optional
    assert loadreport.parse_load(" queued=1 , running=0,steps=9,next=1") == Load(1, 0, 9)
    assert loadreport.parse_load("queued=x,running=1") is None
    assert loadreport.parse_load("") is None
    assert loadreport.read([("imagemesh-load", b"queued=2,running=1,steps=3")]) == (
        Load(2, 1, 3),
        False,
    )
    # A timed server adds its prediction and pace; a pace without steps' time is no pace.
    paced = "queued=1,running=1,steps=52,ms=10870,step_ms=197.5,call_ms=470"
    assert loadreport.parse_load(paced) == Load(1, 1, 52, 10870, Pace(197.5, 470))
    assert loadreport.parse_load("queued=0,running=0,steps=0,ms=0,step_ms=0") == Load(0, 0, 0)
    text = loadreport.format_load(1, 1, 52, 10870, Pace(197.5, 470.25))
    assert loadreport.parse_load(text) == Load(1, 1, 52, 10870, Pace(198, 470.2))
