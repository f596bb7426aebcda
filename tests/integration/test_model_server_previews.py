"""Live progress straight from the model servers (gRPC, no gateway): GenerateStream carries each
step and the partial images asked for (EditStream shares the code; tests/integration/
test_gateway_stream.py streams an edit through it), and a call whose deadline passes while it runs
stops the pipeline at the next step."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image

from services.modelserver.service import ModelService
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.mesh import Mesh
from tests.support.step_gate import StepGate
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models


def summary(events: Iterable[common_pb2.GenerationEvent]) -> list[str]:
    """Running steps as "step N", previews as "partial I@N", then "result"."""
    names = []
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "progress" and event.progress.step > 0:
            names.append(f"step {event.progress.step}")
        elif kind == "partial_image":
            names.append(
                f"partial {event.partial_image.partial_image_index}@{event.partial_image.step}"
            )
        elif kind == "result":
            names.append("result")
    return names


def picture(image: common_pb2.Image) -> Image.Image:
    decoded = Image.open(io.BytesIO(image.data))
    decoded.load()
    assert decoded.format == "PNG" and image.mime_type == "image/png"
    return decoded


def test_generate_stream_carries_steps_and_partial_images(mesh: Mesh) -> None:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse at dusk", width=64, height=80, num_inference_steps=4,
        partial_images=2, seed=7,
    )  # fmt: skip
    with grpc.insecure_channel(mesh.targets["qwen_image"]) as channel:
        events = list(qwen_image_pb2_grpc.ImageGenerationStub(channel).GenerateStream(request))
    assert summary(events) == [
        "step 1", "partial 0@1", "step 2", "step 3", "partial 1@3", "step 4", "result",
    ]  # fmt: skip
    partials = [e.partial_image for e in events if e.WhichOneof("event") == "partial_image"]
    assert [picture(p.image).size for p in partials] == [(64, 80)] * 2
    assert picture(events[-1].result.images[0]).size == (64, 80)


def test_too_many_partial_images_are_refused(mesh: Mesh) -> None:
    request = qwen_image_pb2.GenerateRequest(prompt="a cat", width=64, height=64, partial_images=4)
    with (
        grpc.insecure_channel(mesh.targets["qwen_image"]) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        list(qwen_image_pb2_grpc.ImageGenerationStub(channel).GenerateStream(request))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "partial_images: 4 is outside 0..3" in (caught.value.details() or "")


@pytest.fixture(scope="module")
def gate() -> StepGate:
    return StepGate()


@pytest.fixture(scope="module")
async def held_server(gate: StepGate) -> AsyncIterator[ModelService]:
    """An in-process server whose steps the test can hold (the mesh's cannot be)."""
    ensure_tiny_models()
    settings = QwenImageSettings(
        listen="127.0.0.1:0", metrics_listen="", location=str(TINY_IMAGE_DIR)
    )
    service = await start(settings, step_hook=gate)
    yield service
    gate.release()
    await service.close(0)


async def test_a_deadline_that_passes_mid_run_stops_the_pipeline_at_the_next_step(
    held_server: ModelService, gate: StepGate
) -> None:
    """The job is held in its first step until the call's deadline passes: the server cancels
    the call, and the job stops at the end of that step (1 of 50 ran), freeing the pipeline."""
    gate.arm()
    request = qwen_image_pb2.GenerateRequest(
        prompt="a long one", width=64, height=64, num_inference_steps=50, partial_images=3
    )
    async with grpc.aio.insecure_channel(held_server.address) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        call = stub.GenerateStream(request, timeout=2)
        job = await gate.wait_held()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        after = await stub.Generate(
            qwen_image_pb2.GenerateRequest(
                prompt="next", width=64, height=64, num_inference_steps=2
            )
        )
    assert len(after.images) == 1
    assert job.cancelled.is_set()
    assert gate.steps_of(job) == [1]
