"""LiblibAI Star-3 Alpha and custom models through the providers gRPC service, against the
fake LiblibAI (signed requests, generate + poll, moderation)."""

from __future__ import annotations

import io

import grpc
import pytest
from google.protobuf import struct_pb2
from imagemesh.v1 import common_pb2, providers_pb2
from PIL import Image

from tests.fakes.liblib_server import FakeLiblib
from tests.fakes.pngs import png
from tests.support.providers import Running, providers_settings, running_providers

P = providers_pb2


def _extra(values: dict) -> struct_pb2.Struct:
    extra = struct_pb2.Struct()
    extra.update(values)
    return extra


def _size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_star3_text_to_image(providers: Running, liblib_fake: FakeLiblib) -> None:
    liblib_fake.waiting_polls, liblib_fake.running_polls = 2, 1
    request = P.ProviderImageRequest(
        model="star-3-alpha-t2i",
        prompt="1 girl,lotus leaf,masterpiece,best quality",
        n=2,
        extra=_extra({"aspectRatio": "portrait", "steps": 30}),
    )
    answer = await providers.stub.GenerateImages(request, timeout=20)
    images = answer.results[0].images
    assert [_size(i.data) for i in images] == [(768, 1024)] * 2
    assert [i.seed for i in images] == [12345, 12346]
    submit = liblib_fake.received("/text2img/ultra")[-1]
    assert submit.body["templateUuid"] == "5d7e67009b344550bc1aa6ccbfa1d7f4"
    params = submit.body["generateParams"]
    assert (params["aspectRatio"], params["imgCount"], params["steps"]) == ("portrait", 2, 30)
    assert len(liblib_fake.received("/status")) == 4  # 2 waiting, 1 running, done


async def test_star3_size_from_width_and_height(
    providers: Running, liblib_fake: FakeLiblib
) -> None:
    request = P.ProviderImageRequest(
        model="star-3-alpha-t2i", prompt="a fox", width=768, height=1024
    )
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert _size(answer.results[0].images[0].data) == (768, 1024)
    params = liblib_fake.received("/text2img/ultra")[-1].body["generateParams"]
    assert params["imageSize"] == {"width": 768, "height": 1024}


async def test_star3_image_to_image_takes_a_url(
    providers: Running, liblib_fake: FakeLiblib
) -> None:
    request = P.ProviderImageRequest(
        model="star-3-alpha-i2i",
        prompt="focus on the cat",
        images=[common_pb2.ImageInput(url="https://example.com/source-image.jpg")],
    )
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert len(answer.results[0].images) == 1
    params = liblib_fake.received("/img2img/ultra")[-1].body["generateParams"]
    assert params["sourceImage"] == "https://example.com/source-image.jpg"


async def test_image_to_image_with_bytes_says_a_url_is_needed(
    providers: Running, liblib_fake: FakeLiblib
) -> None:
    request = P.ProviderImageRequest(
        model="star-3-alpha-i2i", prompt="x", images=[common_pb2.ImageInput(data=png(8, 8))]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "public http(s) URL" in err.value.details()
    assert liblib_fake.received() == []


async def test_custom_model_as_seed_001(providers: Running, liblib_fake: FakeLiblib) -> None:
    """baseModelType f1, checkPointId, and a nested generateParams with additionalNetwork."""
    extra = {
        "baseModelType": "f1",
        "checkPointId": "412b427ddb674b4dbab9e5abd5ae6057",
        "generateParams": {
            "negativePrompt": "低质量，模糊",
            "sampler": 1,
            "steps": 30,
            "cfgScale": 3.5,
            "width": 720,
            "height": 1440,
            "imgCount": 1,
            "additionalNetwork": [{"modelId": "d250a31f321e4cee84fe4115cabb8bc4", "weight": 0.8}],
        },
    }
    request = P.ProviderImageRequest(model="liblib-custom", prompt="短发女孩", extra=_extra(extra))
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert _size(answer.results[0].images[0].data) == (720, 1440)
    body = liblib_fake.received("/api/generate/webui/text2img")[-1].body
    assert body["templateUuid"] == "6f7c4652458d4802969f8d089cf5b91f"  # F.1 text-to-image
    params = body["generateParams"]
    assert params["checkPointId"] == "412b427ddb674b4dbab9e5abd5ae6057"
    assert params["additionalNetwork"] == [
        {"modelId": "d250a31f321e4cee84fe4115cabb8bc4", "weight": 0.8}
    ]
    assert (params["sampler"], params["imgCount"], params["cfgScale"]) == (1, 1, 3.5)


async def test_a_failed_generation_is_aborted(providers: Running, liblib_fake: FakeLiblib) -> None:
    liblib_fake.task_outcome = "FAILED"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="star-3-alpha-t2i", prompt="x"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "模型推理异常" in err.value.details()


async def test_moderated_images_are_left_out_with_a_warning(
    providers: Running, liblib_fake: FakeLiblib
) -> None:
    liblib_fake.task_outcome = "MODERATED"
    request = P.ProviderImageRequest(model="star-3-alpha-t2i", prompt="x", n=3)
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert len(answer.results[0].images) == 2
    assert list(answer.warnings) == ["1 of 3 images withheld by LiblibAI moderation"]


async def test_envelope_errors_map_to_statuses(providers: Running, liblib_fake: FakeLiblib) -> None:
    liblib_fake.fail_next(200, code="100054", message="并发任务数超过上限")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="star-3-alpha-t2i", prompt="x"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "并发任务数超过上限" in err.value.details()


async def test_a_bad_parameter_envelope_is_invalid_argument(
    providers: Running, liblib_fake: FakeLiblib
) -> None:
    extra = _extra({"imageSize": {"width": 4096, "height": 4096}})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="star-3-alpha-t2i", prompt="x", extra=extra), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "512 to 2048" in err.value.details()


@pytest.mark.parametrize("http_status", [200, 401])
async def test_a_wrong_secret_is_failed_precondition(
    provider_fakes, liblib_fake: FakeLiblib, http_status: int
) -> None:
    """The signature check fails under HTTP 200 or 401 (unconfirmed which): both are caught."""
    liblib_fake.auth_http_status = http_status
    settings = providers_settings(provider_fakes, liblib_secret_key="not-the-secret")
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.stub.GenerateImages(
                P.ProviderImageRequest(model="star-3-alpha-t2i", prompt="x"), timeout=10
            )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "LIBLIB_ACCESS_KEY / LIBLIB_SECRET_KEY rejected by LiblibAI" in err.value.details()
    assert "签名验证失败" in err.value.details()
