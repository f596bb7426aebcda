"""ControlNet on the Qwen-Image server, over real gRPC, with the tiny ControlNets that
`make setup` builds (`services/tinymodels/controlnet.py`): two control ones and an inpainting one,
loaded once from QWEN_IMAGE_CONTROLNET_LOCATION.

What a caller sees: a control picture changes the picture for the same seed (and the same request
gives the same bytes again), several pictures through one ControlNet differ from one, a masked
edit runs the ControlNet inpainting pipeline at the image's size, previews, cancel and LoRA work with a
control, Describe lists the ControlNets, bad control inputs are refused naming the field, and the
edit server refuses control inputs naming its model.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
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

from services.modelserver.service import ModelService
from services.qwen_edit.service import start as start_edit
from services.qwen_edit.settings import QwenEditSettings
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.controlnets import (
    CONTROL,
    DEPTH,
    INPAINTING,
    disc,
    ensure_tiny_controlnets,
    stripes,
)
from tests.support.inpainting import left_half_grey_mask, png, sample_image
from tests.support.step_gate import StepGate
from tests.support.tiny_models import (
    TINY_EDIT_DIR,
    TINY_IMAGE_DIR,
    ensure_tiny_loras,
    ensure_tiny_models,
)

SHAPE: dict[str, Any] = {"width": 64, "height": 64, "num_inference_steps": 2}


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
        controlnet_location=ensure_tiny_controlnets(),
        lora_dir=str(ensure_tiny_loras()),
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


def control(
    picture: bytes | None, controlnet: str = "", scale: float | None = None
) -> common_pb2.ControlInput:
    made = common_pb2.ControlInput(controlnet=controlnet)
    if picture is not None:
        made.image.data = picture
    if scale is not None:
        made.conditioning_scale = scale
    return made


def request(*controls: common_pb2.ControlInput, **extra: Any) -> qwen_image_pb2.GenerateRequest:
    fields = {"prompt": "a lighthouse at dusk", "seed": 5, **SHAPE, **extra}
    return qwen_image_pb2.GenerateRequest(controls=list(controls), **fields)


def pixels(result: common_pb2.GenerationResult) -> np.ndarray:
    (image,) = result.images
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"), dtype=np.int16)


def moved(one: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(one - other).mean())


async def test_a_control_picture_changes_the_picture_for_the_same_seed(stub) -> None:  # type: ignore[no-untyped-def]
    plain = await stub.Generate(request())
    controlled = await stub.Generate(request(control(stripes())))
    again = await stub.Generate(request(control(stripes())))
    assert controlled.images[0].data != plain.images[0].data
    assert again.images[0].data == controlled.images[0].data
    assert moved(pixels(controlled), pixels(plain)) > 1.0
    assert (controlled.images[0].width, controlled.images[0].height) == (64, 64)
    other = await stub.Generate(request(control(disc())))
    assert moved(pixels(other), pixels(controlled)) > 0.5  # the picture itself matters
    stronger = await stub.Generate(request(control(stripes(), scale=2.0)))
    assert moved(pixels(stronger), pixels(controlled)) > 0.5
    # Another ControlNet, named, on the same picture: its own picture.
    depth = await stub.Generate(request(control(stripes(), DEPTH)))
    assert moved(pixels(depth), pixels(controlled)) > 1.0


async def test_several_pictures_go_through_one_controlnet_together(stub) -> None:  # type: ignore[no-untyped-def]
    one = pixels(await stub.Generate(request(control(stripes(), CONTROL))))
    both = await stub.Generate(
        request(control(stripes(), CONTROL), control(disc(), CONTROL, scale=0.7))
    )
    assert moved(pixels(both), one) > 1.0
    # control_guidance_end 0.5: the ControlNet acts on the first of the two steps only.
    pair = (control(stripes(), CONTROL), control(disc(), CONTROL, scale=0.7))
    early = await stub.Generate(request(*pair, control_guidance_end=0.5))
    assert early.images[0].data != both.images[0].data
    assert moved(pixels(early), pixels(both)) > 0.05


async def test_a_masked_edit_runs_the_controlnet_inpainting_pipeline(stub) -> None:  # type: ignore[no-untyped-def]
    image = png(sample_image(96, 64))
    mask = png(left_half_grey_mask(96, 64))
    base: dict[str, Any] = {"width": 0, "height": 0}
    inpainted = await stub.Generate(
        request(
            image=common_pb2.ImageInput(data=image), mask=common_pb2.ImageInput(data=mask), **base
        )
    )
    controlled = await stub.Generate(
        request(
            control(None, INPAINTING),
            image=common_pb2.ImageInput(data=image),
            mask=common_pb2.ImageInput(data=mask),
            **base,
        )
    )
    (made,) = controlled.images
    assert (made.width, made.height) == (96, 64)  # the image's size
    assert moved(pixels(controlled), pixels(inpainted)) > 1.0


async def test_previews_and_lora_work_with_a_control(stub) -> None:  # type: ignore[no-untyped-def]
    events = [
        event async for event in stub.GenerateStream(request(control(stripes()), partial_images=1))
    ]
    kinds = [event.WhichOneof("event") for event in events]
    assert "partial_image" in kinds and kinds[-1] == "result"
    assert "progress" in kinds
    controlled = pixels(await stub.Generate(request(control(stripes()))))
    with_lora = await stub.Generate(
        request(control(stripes()), loras=[common_pb2.LoraRef(name="tiny-a")])
    )
    assert moved(pixels(with_lora), controlled) > 0.2  # tiny-a moves the picture a little
    assert np.array_equal(pixels(await stub.Generate(request(control(stripes())))), controlled)


async def test_a_controlnet_call_stops_at_the_next_step_when_its_caller_goes(
    stub,  # type: ignore[no-untyped-def]
    gate: StepGate,
) -> None:
    gate.arm()
    call = stub.GenerateStream(
        request(control(stripes()), num_inference_steps=50, partial_images=3), timeout=2
    )
    job = await gate.wait_held()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (await stub.Generate(request(control(stripes())))).images  # the pipeline is free
    assert job.cancelled.is_set()
    assert gate.steps_of(job) == [1]


async def test_describe_lists_the_controlnets(channel: grpc.aio.Channel) -> None:
    info = await common_pb2_grpc.ModelServerStub(channel).Describe(
        common_pb2.DescribeModelServerRequest()
    )
    listed = {net.name: net.kind for net in info.controlnets}
    assert listed == {CONTROL: "control", DEPTH: "control", INPAINTING: "inpainting"}
    assert all(net.location.endswith(net.name) for net in info.controlnets)


REFUSALS: dict[str, tuple[Any, str]] = {
    "unknown": (
        lambda: request(control(stripes(), "nope")),
        f"unknown ControlNet 'nope'; qwen-image-tiny has {CONTROL} (control), {DEPTH} (control), "
        f"{INPAINTING} (inpainting)",
    ),
    "two nets": (
        lambda: request(control(stripes(), CONTROL), control(disc(), DEPTH)),
        "all inputs of a request go to one ControlNet",
    ),
    "negative scale": (
        lambda: request(control(stripes(), CONTROL, scale=-0.5)),
        "controls[0].conditioning_scale: -0.5 must be a number >= 0",
    ),
    "start after end": (
        lambda: request(
            control(stripes(), CONTROL), control_guidance_start=0.6, control_guidance_end=0.4
        ),
        "control_guidance_start: 0.6 must be below control_guidance_end (0.4)",
    ),
    "end above 1": (
        lambda: request(control(stripes(), CONTROL), control_guidance_end=1.5),
        "control_guidance_end: 1.5 is outside 0..1",
    ),
    "guidance without controls": (
        lambda: request(control_guidance_start=0.2),
        "control_guidance_start: applies to control inputs; send controls too",
    ),
    "inpainting net for text to image": (
        lambda: request(control(stripes(), INPAINTING)),
        f"{INPAINTING} is a inpainting ControlNet; text to image takes a control one",
    ),
    "img2img": (
        lambda: request(
            control(stripes(), CONTROL),
            image=common_pb2.ImageInput(data=png(sample_image(64, 64))),
        ),
        "diffusers 0.42 has no ControlNet img2img pipeline",
    ),
    "no picture": (
        lambda: request(control(None, CONTROL)),
        "controls[0].image: required; send the control picture",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_bad_control_inputs_are_refused_naming_the_field(stub, case: str) -> None:  # type: ignore[no-untyped-def]
    make, fragment = REFUSALS[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(make())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (caught.value.details() or "")


async def test_the_edit_server_refuses_control_inputs_naming_its_model() -> None:
    ensure_tiny_models()
    settings = QwenEditSettings(
        listen="127.0.0.1:0", metrics_listen="", location=str(TINY_EDIT_DIR)
    )
    service = await start_edit(settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as opened:
            edit = qwen_edit_pb2_grpc.ImageEditingStub(opened)
            image = common_pb2.ImageInput(data=png(sample_image(64, 64)))
            asked = qwen_edit_pb2.EditRequest(prompt="make it blue", images=[image], **SHAPE)
            assert (await edit.Edit(asked)).images  # the same edit without controls runs
            for extra in ({"controls": [control(stripes())]}, {"control_guidance_end": 0.5}):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await edit.Edit(
                        qwen_edit_pb2.EditRequest(
                            prompt="make it blue", images=[image], **SHAPE, **extra
                        )
                    )
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (
                    "controls: qwen-image-edit-tiny takes no ControlNet inputs; diffusers 0.42 "
                    "has no ControlNet edit pipeline"
                ) in (caught.value.details() or "")
    finally:
        await service.close(0)
