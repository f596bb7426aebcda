"""Per-request LoRA on both model servers, over real gRPC, with the tiny adapters that
`make setup` builds (`services/tinymodels/lora.py`) and one broken adapter file.

What a caller sees: an adapter changes the picture, the same seed without it gives the base
picture again, switching adapters (and evicting one, then loading it again) is clean, jobs with
other adapters never share a pipeline call, and bad requests are refused naming the adapter.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from imagemesh.v1 import (
    common_pb2,
    common_pb2_grpc,
    qwen_edit_pb2,
    qwen_edit_pb2_grpc,
    qwen_image_pb2,
    qwen_image_pb2_grpc,
)
from PIL import Image
from prometheus_client import REGISTRY

from services.modelserver.service import ModelService
from services.qwen_edit.service import start as start_edit
from services.qwen_edit.settings import QwenEditSettings
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.step_gate import StepGate
from tests.support.tiny_models import (
    BROKEN_LORA,
    TINY_EDIT_DIR,
    TINY_IMAGE_DIR,
    ensure_tiny_models,
    lora_folder,
)
from tests.support.waiting import eventually

SHAPE: dict[str, Any] = {"width": 64, "height": 64, "num_inference_steps": 2}
A, B, C = "tiny-a", "tiny-b", "tiny-c"  # tiny-c: a copy of tiny-a under another name


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = lora_folder(tmp_path_factory.mktemp("loras"))
    shutil.copyfile(folder / f"{A}.safetensors", folder / f"{C}.safetensors")
    return folder


@pytest.fixture(scope="module")
def gate() -> StepGate:
    return StepGate()


@pytest.fixture(scope="module")
async def server(loras: Path, gate: StepGate) -> AsyncIterator[ModelService]:
    ensure_tiny_models()
    settings = QwenImageSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        location=str(TINY_IMAGE_DIR),
        max_queue=8,
        max_batch_images=4,
        lora_dir=str(loras),
        max_loaded_loras=2,
        max_loras_per_request=2,
        shutdown_grace_seconds=1,
    )
    service = await start(settings, step_hook=gate)
    yield service
    gate.release()
    await service.close(0)


@pytest.fixture(scope="module")
async def channel(server: ModelService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> qwen_image_pb2_grpc.ImageGenerationStub:
    return qwen_image_pb2_grpc.ImageGenerationStub(channel)


def lora(name: str, scale: float | None = None) -> common_pb2.LoraRef:
    ref = common_pb2.LoraRef(name=name)
    if scale is not None:
        ref.scale = scale
    return ref


def request(*loras: common_pb2.LoraRef, seed: int = 5) -> qwen_image_pb2.GenerateRequest:
    return qwen_image_pb2.GenerateRequest(
        prompt="a lighthouse at dusk", seed=seed, loras=list(loras), **SHAPE
    )


def pixels(result: common_pb2.GenerationResult) -> np.ndarray:
    (image,) = result.images
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"), dtype=np.int16)


def moved(one: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(one - other).mean())


async def picture(stub: qwen_image_pb2_grpc.ImageGenerationStub, *refs: Any, seed: int = 5) -> Any:
    return pixels(await stub.Generate(request(*refs, seed=seed)))


async def described(channel: grpc.aio.Channel) -> common_pb2.ModelServerInfo:
    return await common_pb2_grpc.ModelServerStub(channel).Describe(
        common_pb2.DescribeModelServerRequest()
    )


def adapters(server: ModelService) -> Any:
    return server.generator.pipeline.adapters  # type: ignore[attr-defined]


async def test_a_lora_changes_the_picture_and_without_it_the_base_comes_back(stub) -> None:  # type: ignore[no-untyped-def]
    base = await picture(stub)
    with_a = await picture(stub, lora(A))
    again = await picture(stub)
    assert moved(with_a, base) > 1.0  # levels of 255, on average over the picture
    assert np.array_equal(again, base)
    assert np.array_equal(await picture(stub, lora(A, 0.0)), base)  # scale 0: no change
    assert moved(await picture(stub, lora(A, 2.0)), with_a) > 1.0


async def test_switching_adapters_is_clean(stub, server: ModelService) -> None:  # type: ignore[no-untyped-def]
    first_a = await picture(stub, lora(A))
    with_b = await picture(stub, lora(B))
    assert moved(with_b, first_a) > 1.0
    loads = adapters(server).loads
    assert np.array_equal(await picture(stub, lora(A)), first_a)  # A, B, A: A's picture
    both = await picture(stub, lora(A), lora(B, 0.5))
    assert moved(both, first_a) > 0.5 and moved(both, with_b) > 0.5
    assert adapters(server).loads == loads  # both were still loaded: nothing read again


async def test_the_least_recently_used_adapter_is_evicted_and_loads_again_cleanly(
    stub,  # type: ignore[no-untyped-def]
    server: ModelService,
    channel: grpc.aio.Channel,
) -> None:
    first_a = await picture(stub, lora(A))
    await picture(stub, lora(B))
    same_as_a = await picture(stub, lora(C))  # the third one: A (least recent) goes
    assert np.array_equal(same_as_a, first_a)  # C's file is A's
    assert adapters(server).loaded == [B, C]
    info = await described(channel)
    assert {entry.name: entry.loaded for entry in info.loras if entry.name != BROKEN_LORA} == {
        A: False,
        B: True,
        C: True,
    }
    loads = adapters(server).loads
    assert np.array_equal(await picture(stub, lora(A)), first_a)  # loaded again: the same
    assert adapters(server).loads == loads + 1
    assert adapters(server).loaded == [C, A]


async def test_describe_lists_the_adapters_and_the_limits(channel: grpc.aio.Channel) -> None:
    info = await described(channel)
    assert [entry.name for entry in info.loras] == sorted([A, B, C, BROKEN_LORA])
    assert (info.max_loras_per_request, info.max_loaded_loras) == (2, 2)


REFUSED = {
    "unknown name": (
        [lora("no-such")],
        grpc.StatusCode.NOT_FOUND,
        ("lora.name: no adapter 'no-such'; available: ", f"{A}, {B}, {C}"),
    ),
    "scale above 2": ([lora(A, 2.5)], grpc.StatusCode.INVALID_ARGUMENT, "lora.scale: 2.5"),
    "negative scale": (
        [lora(B), lora(A, -1)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "lora[1].scale: -1 is outside 0..2",
    ),
    "too many": (
        [lora(A), lora(B), lora(C)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "lora: 3 adapters given; at most 2 per request",
    ),
    "twice": ([lora(A), lora(A)], grpc.StatusCode.INVALID_ARGUMENT, "tiny-a is given twice"),
    "empty name": ([lora("")], grpc.StatusCode.INVALID_ARGUMENT, "lora.name: must not be empty"),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_bad_adapters_are_refused_naming_them(stub, case: str) -> None:  # type: ignore[no-untyped-def]
    refs, code, message = REFUSED[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(request(*refs))
    assert caught.value.code() == code
    for fragment in [message] if isinstance(message, str) else message:
        assert fragment in (caught.value.details() or "")


async def test_a_broken_adapter_fails_its_requests_only_and_is_listed_unavailable(
    stub,  # type: ignore[no-untyped-def]
    channel: grpc.aio.Channel,
) -> None:
    for _ in range(2):  # the load fails, then the mark refuses before the queue
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Generate(request(lora(BROKEN_LORA)))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"lora '{BROKEN_LORA}' is unavailable" in (caught.value.details() or "")
    [entry] = [e for e in (await described(channel)).loras if e.name == BROKEN_LORA]
    assert not entry.available and f"{BROKEN_LORA}.safetensors does not load" in entry.reason
    assert moved(await picture(stub, lora(B)), await picture(stub)) > 1.0  # the rest still work


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"server": "qwen_image"}) or 0.0


async def test_jobs_with_other_adapters_never_share_a_call(
    stub,  # type: ignore[no-untyped-def]
    server: ModelService,
    gate: StepGate,
) -> None:
    sets: list[list[common_pb2.LoraRef]] = [[], [lora(A)], [], [lora(A)], [lora(A, 0.5)]]
    alone = [await picture(stub, *refs, seed=20 + i) for i, refs in enumerate(sets)]
    calls_before = metric("imagemesh_modelserver_batch_images_count")
    gate.arm()
    blocker = asyncio.ensure_future(stub.Generate(request(seed=1)))
    await gate.wait_held()
    queued = [
        asyncio.ensure_future(stub.Generate(request(*refs, seed=20 + i)))
        for i, refs in enumerate(sets)
    ]
    queue = server.generator.runner.queue  # type: ignore[attr-defined]
    await eventually(lambda: queue.waiting == len(sets), 30, "every caller queued")
    gate.release()
    await blocker
    together = [pixels(await call) for call in queued]
    # The blocker, then one call per adapter set: none, A at 1.0, A at 0.5.
    assert metric("imagemesh_modelserver_batch_images_count") - calls_before == 1 + 3
    for own, solo in zip(together, alone, strict=True):
        assert np.abs(own - solo).max() <= 1  # each its own adapters' picture (within 1/255)


def png(color: tuple[int, int, int]) -> common_pb2.ImageInput:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, "PNG")
    return common_pb2.ImageInput(data=buffer.getvalue())


async def test_the_edit_server_applies_adapters_too(loras: Path) -> None:
    ensure_tiny_models()
    settings = QwenEditSettings(
        listen="127.0.0.1:0", metrics_listen="", location=str(TINY_EDIT_DIR), lora_dir=str(loras)
    )
    service = await start_edit(settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as opened:
            edit = qwen_edit_pb2_grpc.ImageEditingStub(opened)

            async def edited(*refs: common_pb2.LoraRef) -> np.ndarray:
                return pixels(
                    await edit.Edit(
                        qwen_edit_pb2.EditRequest(
                            prompt="make it blue",
                            images=[png((200, 30, 30))],
                            seed=3,
                            loras=list(refs),
                            **SHAPE,
                        )
                    )
                )

            base = await edited()
            assert moved(await edited(lora(B)), base) > 1.0
            assert np.array_equal(await edited(), base)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await edited(lora("nope"))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert "no adapter 'nope'; available: broken, tiny-a, tiny-b" in (
                caught.value.details() or ""
            )
    finally:
        await service.close(0)
