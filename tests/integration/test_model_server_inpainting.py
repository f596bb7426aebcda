"""Img2img and inpainting on the Qwen-Image server's tiny pipeline, over real gRPC.

What a caller gets back: PNG bytes of the asked size, the masked area redrawn, the rest no
further from the input than the tiny VAE's own round trip; OpenAI's transparent-means-change
mask and diffusers' white-means-change mask give the same picture; bad masks and strengths
answer INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from imagemesh.v1 import common_pb2, qwen_image_pb2, qwen_image_pb2_grpc

from services.modelserver.service import ModelService
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support import tiny_models
from tests.support.inpainting import (
    left_half_alpha_mask,
    left_half_grey_mask,
    mean_moved,
    pixels,
    png,
    round_trip,
    sample_image,
)

SIDE = 256  # the tiny VAE decoder's reach is tens of pixels: the right quarter is far from the edge


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[ModelService]:
    tiny_models.ensure_tiny_models()
    settings = QwenImageSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        location=str(tiny_models.TINY_IMAGE_DIR),
        shutdown_grace_seconds=1,
    )
    service = await start(settings)
    yield service
    await service.close(0)


@pytest.fixture(scope="module")
async def stub(server: ModelService) -> AsyncIterator[qwen_image_pb2_grpc.ImageGenerationStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield qwen_image_pb2_grpc.ImageGenerationStub(channel)


def request(**fields: Any) -> qwen_image_pb2.GenerateRequest:
    base: dict[str, Any] = {
        "prompt": "a red fox in the snow",
        "num_inference_steps": 2,
        "seed": 7,
        "image": common_pb2.ImageInput(data=png(sample_image(SIDE, SIDE))),
    }
    return qwen_image_pb2.GenerateRequest(**{**base, **fields})


def mask_input(image: Any) -> common_pb2.ImageInput:
    return common_pb2.ImageInput(data=png(image))


async def test_inpainting_redraws_the_masked_area_and_keeps_the_rest(stub) -> None:  # type: ignore[no-untyped-def]
    result = await stub.Generate(request(mask=mask_input(left_half_alpha_mask(SIDE, SIDE))))
    (image,) = result.images
    assert image.mime_type == "image/png" and (image.width, image.height) == (SIDE, SIDE)
    out = pixels(image.data)
    assert out.shape == (SIDE, SIDE, 3)
    kept = round_trip(tiny_models.TINY_IMAGE_DIR, sample_image(SIDE, SIDE))
    inside = mean_moved(out[:, : SIDE // 2], kept[:, : SIDE // 2])
    far_outside = mean_moved(out[:, 3 * SIDE // 4 :], kept[:, 3 * SIDE // 4 :])
    assert far_outside < 1.5, far_outside  # the round trip, within rounding
    assert inside > 8 and inside > 10 * far_outside, (inside, far_outside)


async def test_a_greyscale_mask_white_means_change_gives_the_same_picture(stub) -> None:  # type: ignore[no-untyped-def]
    alpha = await stub.Generate(request(mask=mask_input(left_half_alpha_mask(SIDE, SIDE))))
    grey = await stub.Generate(request(mask=mask_input(left_half_grey_mask(SIDE, SIDE))))
    assert alpha.images[0].data == grey.images[0].data


async def test_img2img_strength_sets_how_far_the_picture_moves(stub) -> None:  # type: ignore[no-untyped-def]
    kept = round_trip(tiny_models.TINY_IMAGE_DIR, sample_image(SIDE, SIDE))
    moved = {}
    for strength in (0.25, 1.0):
        result = await stub.Generate(request(strength=strength, num_inference_steps=4))
        (image,) = result.images
        assert (image.width, image.height) == (SIDE, SIDE)
        moved[strength] = mean_moved(pixels(image.data), kept)
    assert moved[0.25] < moved[1.0], moved


async def test_img2img_takes_the_image_size_or_the_one_asked_for(stub) -> None:  # type: ignore[no-untyped-def]
    odd = common_pb2.ImageInput(data=png(sample_image(100, 70)))  # rounded to 16: 96x64
    result = await stub.Generate(request(image=odd))
    assert (result.images[0].width, result.images[0].height) == (96, 64)
    assert pixels(result.images[0].data).shape == (64, 96, 3)
    result = await stub.Generate(request(width=128, height=64))
    assert pixels(result.images[0].data).shape == (64, 128, 3)


async def test_a_stream_counts_the_steps_that_run(stub) -> None:  # type: ignore[no-untyped-def]
    totals, steps = set(), []
    async for event in stub.GenerateStream(request(strength=0.5, num_inference_steps=4)):
        if event.HasField("progress") and event.progress.step:
            totals.add(event.progress.total_steps)
            steps.append(event.progress.step)
    assert totals == {2} and steps == [1, 2]


INVALID = {
    "mask of another size": (
        {"mask": mask_input(left_half_alpha_mask(128, 64))},
        f"mask: 128x64 does not match image, which is {SIDE}x{SIDE}",
    ),
    "strength zero": ({"strength": 0.0}, "strength: 0 is outside 0..1"),
    "strength above one": ({"strength": 1.5}, "strength: 1.5 is outside 0..1"),
    "mask without image": (
        {"image": None, "mask": mask_input(left_half_alpha_mask(SIDE, SIDE))},
        "mask: needs the image it applies to",
    ),
    "strength without image": ({"image": None, "strength": 0.5}, "strength: applies to an input"),
    "undecodable mask": ({"mask": common_pb2.ImageInput(data=b"nope")}, "mask: not a decodable"),
    "image url": (
        {"image": common_pb2.ImageInput(url="https://example.com/a.png")},
        "image: model servers take image bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_bad_masks_and_strengths_are_refused_naming_the_field(stub, case: str) -> None:  # type: ignore[no-untyped-def]
    fields, message = INVALID[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(request(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
