"""The Qwen-Image-Edit server on the tiny Edit and Edit-Plus pipelines, over real gRPC.

The edit pipelines encode every input at about one megapixel whatever the output size, so each
edit costs seconds on CPU: this module runs one Edit and one Edit-Plus pipeline call, and checks
every refusal (which costs no pipeline work) on the same servers.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from services.modelserver.service import ModelService
from services.qwen_edit.service import start
from services.qwen_edit.settings import QwenEditSettings
from tests.support.tiny_models import TINY_EDIT_DIR, TINY_EDIT_PLUS_DIR, ensure_tiny_models


async def _serve(location: str) -> ModelService:
    ensure_tiny_models()
    settings = QwenEditSettings(
        listen="127.0.0.1:0", metrics_listen="", location=location, max_input_images=2
    )
    return await start(settings)


@pytest.fixture(scope="module")
async def edit_stub() -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    service = await _serve(str(TINY_EDIT_DIR))
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield qwen_edit_pb2_grpc.ImageEditingStub(channel)
    await service.close(0)


@pytest.fixture(scope="module")
async def plus_stub() -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    service = await _serve(str(TINY_EDIT_PLUS_DIR))
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield qwen_edit_pb2_grpc.ImageEditingStub(channel)
    await service.close(0)


def png(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> common_pb2.ImageInput:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return common_pb2.ImageInput(data=buffer.getvalue())


def request(**fields: Any) -> qwen_edit_pb2.EditRequest:
    base: dict[str, Any] = {
        "prompt": "make the sky blue",
        "images": [png((200, 30, 30))],
        "width": 128,
        "height": 96,
        "num_inference_steps": 2,
        "seed": 7,
    }
    return qwen_edit_pb2.EditRequest(**{**base, **fields})


INVALID = {
    "empty prompt": ({"prompt": " "}, "prompt: must not be empty"),
    "no image": ({"images": []}, "images: at least one input image is required"),
    "two images for Edit": (
        {"images": [png((1, 2, 3)), png((4, 5, 6))]},
        "images: 2 given; QwenImageEditPipeline takes at most 1",
    ),
    "undecodable image": (
        {"images": [common_pb2.ImageInput(data=b"\x89PNG not really")]},
        "images[0]: not a decodable image",
    ),
    "url instead of bytes": (
        {"images": [common_pb2.ImageInput(url="https://example.com/a.png")]},
        "images[0]: model servers take image bytes, not URLs",
    ),
    "width only": ({"height": 0}, "width and height: give both, or neither"),
    "bad width": ({"width": 120}, "width: 120 is not a multiple of 16"),
    "one step": ({"num_inference_steps": 1}, "num_inference_steps: 1 is outside 2..100"),
    "too many outputs": ({"num_images": 5}, "num_images: 5 is outside 1..4"),
    "a mask of another size": (
        {"mask": png((0, 0, 0), (32, 32))},
        "mask: 32x32 does not match images[0], which is 96x64",
    ),
    "extreme aspect ratio, no size": (
        {"images": [png((1, 2, 3), (4000, 40))], "width": 0, "height": 0},
        "is outside 64..2048 pixels (the default size for images[0], 4000x40)",
    ),
}


async def test_invalid_inputs_are_refused_then_an_edit_of_one_image_succeeds(edit_stub) -> None:  # type: ignore[no-untyped-def]
    for case, (fields, message) in INVALID.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edit_stub.Edit(request(**fields))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert message in (caught.value.details() or ""), (case, caught.value.details())
    result = await edit_stub.Edit(request())
    [image] = result.images
    picture = Image.open(io.BytesIO(image.data))
    assert (picture.format, picture.size) == ("PNG", (128, 96))
    assert (image.width, image.height, image.seed) == (128, 96, 7)


async def test_edit_plus_takes_two_images_and_streams_its_steps(plus_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plus_stub.Edit(request(images=[png((9, 9, 9))] * 3))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images: 3 given; QwenImageEditPlusPipeline takes at most 2" in (
        caught.value.details() or ""
    )
    two = [png((200, 30, 30)), png((30, 30, 200), (64, 64))]
    events = [event async for event in plus_stub.EditStream(request(images=two))]
    steps = [e.progress.step for e in events if e.WhichOneof("event") == "progress"]
    assert steps == [0, 1, 2]
    result = events[-1].result
    assert [Image.open(io.BytesIO(i.data)).size for i in result.images] == [(128, 96)]
    assert result.usage.image_count == 1
