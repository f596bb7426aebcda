"""Inpainting on the Qwen-Image-Edit server's tiny pipelines (QwenImageEditInpaintPipeline
derived from the loaded Edit or Edit-Plus pipeline), over real gRPC.

The edit pipelines work at about one megapixel whatever the input's size, so the kept-area test
sends a 1024x1024 image: no resize on the way in or out, the picture the caller gets is the
pipeline's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

from services.qwen_edit.service import start
from services.qwen_edit.settings import QwenEditSettings
from tests.support import tiny_models
from tests.support.inpainting import (
    left_half_alpha_mask,
    mean_moved,
    pixels,
    png,
    round_trip,
    sample_image,
)

SIDE = 1024


async def _served(location: Path) -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    tiny_models.ensure_tiny_models()
    settings = QwenEditSettings(
        listen="127.0.0.1:0", metrics_listen="", location=str(location), shutdown_grace_seconds=1
    )
    service = await start(settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            yield qwen_edit_pb2_grpc.ImageEditingStub(channel)
    finally:
        await service.close(0)


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    """The plain Edit pipeline's server."""
    async for served in _served(tiny_models.TINY_EDIT_DIR):
        yield served


@pytest.fixture(scope="module")
async def plus_stub() -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    async for served in _served(tiny_models.TINY_EDIT_PLUS_DIR):
        yield served


def request(side: int = SIDE, **fields: Any) -> qwen_edit_pb2.EditRequest:
    base: dict[str, Any] = {
        "prompt": "give the square a hat",
        "num_inference_steps": 2,
        "seed": 3,
        "images": [common_pb2.ImageInput(data=png(sample_image(side, side)))],
        "mask": common_pb2.ImageInput(data=png(left_half_alpha_mask(side, side))),
    }
    return qwen_edit_pb2.EditRequest(**{**base, **fields})


async def test_the_masked_half_changes_and_the_other_stays_the_round_trip(stub) -> None:  # type: ignore[no-untyped-def]
    result = await stub.Edit(request())
    (image,) = result.images
    assert image.mime_type == "image/png" and (image.width, image.height) == (SIDE, SIDE)
    out = pixels(image.data)
    kept = round_trip(tiny_models.TINY_EDIT_DIR, sample_image(SIDE, SIDE))
    inside = mean_moved(out[:, : SIDE // 2], kept[:, : SIDE // 2])
    far_outside = mean_moved(out[:, 3 * SIDE // 4 :], kept[:, 3 * SIDE // 4 :])
    assert far_outside < 1.5, far_outside
    assert inside > 8 and inside > 10 * far_outside, (inside, far_outside)


async def test_edit_plus_inpaints_too_and_a_small_input_comes_back_at_its_size(plus_stub) -> None:  # type: ignore[no-untyped-def]
    # The pipeline works at about one megapixel; the caller gets the input's 128x128 back.
    result = await plus_stub.Edit(request(side=128))
    assert pixels(result.images[0].data).shape == (128, 128, 3)


async def test_edit_plus_with_several_images_masks_the_first(plus_stub) -> None:  # type: ignore[no-untyped-def]
    side = 256
    first = sample_image(side, side)
    second = common_pb2.ImageInput(data=png(sample_image(side // 2, side // 2)))
    result = await plus_stub.Edit(
        request(
            side=side,
            images=[common_pb2.ImageInput(data=png(first)), second],
            mask=common_pb2.ImageInput(data=png(left_half_alpha_mask(side, side))),
        )
    )
    (image,) = result.images
    out = pixels(image.data)
    assert out.shape == (side, side, 3)
    kept = round_trip(tiny_models.TINY_EDIT_PLUS_DIR, first)
    inside = mean_moved(out[:, : side // 2], kept[:, : side // 2])
    far_outside = mean_moved(out[:, 3 * side // 4 :], kept[:, 3 * side // 4 :])
    assert far_outside < 1.5, far_outside
    assert inside > 8 and inside > 10 * far_outside, (inside, far_outside)


async def test_with_several_images_strength_below_one_is_refused(plus_stub) -> None:  # type: ignore[no-untyped-def]
    two = [common_pb2.ImageInput(data=png(sample_image(SIDE, SIDE)))] * 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plus_stub.Edit(request(images=two, strength=0.5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "strength: 0.5 with several input images" in (caught.value.details() or "")


INVALID = {
    "mask of another size": (
        {"mask": common_pb2.ImageInput(data=png(left_half_alpha_mask(64, 32)))},
        f"mask: 64x32 does not match images[0], which is {SIDE}x{SIDE}",
    ),
    "strength above one": ({"strength": 1.01}, "strength: 1.01 is outside 0..1"),
    "strength without mask": (
        {"mask": None, "strength": 0.5},
        "strength: applies to an edit with a mask",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_bad_masks_and_strengths_are_refused_naming_the_field(stub, case: str) -> None:  # type: ignore[no-untyped-def]
    fields, message = INVALID[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Edit(request(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
