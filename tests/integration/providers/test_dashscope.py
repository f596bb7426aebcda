"""qwen-plus chat, hosted qwen-image-plus and Wanx tasks through the providers gRPC service,
against the fake DashScope."""

from __future__ import annotations

import io

import grpc
import pytest
from google.protobuf import struct_pb2
from imagemesh.v1 import providers_pb2
from PIL import Image

from tests.fakes.dashscope_server import FakeDashScope
from tests.support.providers import Running, providers_settings, running_providers

P = providers_pb2


def _size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_qwen_plus_chat(providers: Running, dashscope_fake: FakeDashScope) -> None:
    request = P.ChatRequest(model="qwen-plus", prompt="你好", temperature=0.7, max_tokens=100)
    answer = await providers.stub.Chat(request, timeout=10)
    assert answer.text == "You said: 你好"
    assert answer.usage.prompt_tokens == 22
    body = dashscope_fake.received("/compatible-mode/v1/chat/completions")[-1].body
    assert body["max_tokens"] == 100 and body["temperature"] == 0.7
    assert body["messages"] == [{"role": "user", "content": "你好"}]  # string content


async def test_qwen_plus_stream_with_thinking(providers: Running) -> None:
    extra = struct_pb2.Struct()
    extra.update({"enable_thinking": True})
    request = P.ChatRequest(model="qwen-plus", prompt="why is the sky blue", extra=extra)
    chunks = [c async for c in providers.stub.ChatStream(request, timeout=10)]
    assert "".join(c.reasoning for c in chunks) == "Let me think."
    assert "".join(c.delta for c in chunks) == "You said: why is the sky blue"
    assert chunks[-1].usage.total_tokens > 0


async def test_qwen_plus_is_text_only(providers: Running, dashscope_fake: FakeDashScope) -> None:
    request = P.ChatRequest(
        model="qwen-plus", prompt="what is this", images=[P.ChatImage(url="https://x/y.png")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "qwen-plus is text-only" in err.value.details()


async def test_hosted_qwen_image_plus_returns_the_downloaded_png(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    request = P.ProviderImageRequest(
        model="qwen-image-plus", prompt="一副典雅庄重的对联", width=1328, height=1328, seed=12345
    )
    answer = await providers.stub.GenerateImages(request, timeout=10)
    [img] = answer.results[0].images
    assert _size(img.data) == (1328, 1328)
    assert (img.width, img.height, img.seed) == (1328, 1328, 12345)
    assert (answer.usage.width, answer.usage.height, answer.usage.image_count) == (1328, 1328, 1)
    sent = dashscope_fake.received("multimodal-generation")[-1]
    assert "x-dashscope-async" not in sent.headers
    assert sent.body["parameters"]["size"] == "1328*1328"
    assert dashscope_fake.downloads == 1 and dashscope_fake.leaked_keys == 0


async def test_qwen_image_plus_n_images_are_n_calls(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    request = P.ProviderImageRequest(model="qwen-image-plus", prompt="a cat", n=2, seed=7)
    answer = await providers.stub.GenerateImages(request, timeout=10)
    assert [i.seed for i in answer.results[0].images] == [7, 8]
    assert answer.usage.image_count == 2


async def test_a_size_qwen_image_does_not_offer_is_refused_with_the_list(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    request = P.ProviderImageRequest(model="qwen-image-plus", prompt="x", width=1000, height=1000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1328*1328" in err.value.details()
    assert dashscope_fake.received() == []


async def test_wanx_task_runs_through_pending_and_running(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.pending_polls, dashscope_fake.running_polls = 2, 2
    request = P.ProviderImageRequest(
        model="wanx2.1-t2i-turbo",
        prompt="一只可爱的小猫咪在草地上玩耍",
        negative_prompt="模糊, 扭曲, 低质量",
        width=1024,
        height=768,
        n=2,
        prompt_extend=True,
    )
    answer = await providers.stub.GenerateImages(request, timeout=20)
    group = answer.results[0]
    assert [_size(i.data) for i in group.images] == [(1024, 768)] * 2
    assert group.actual_prompt.startswith("一只可爱的小猫咪在草地上玩耍, highly detailed")
    create = dashscope_fake.received("image-synthesis")[-1]
    assert create.headers["x-dashscope-async"] == "enable"
    assert create.body["input"]["negative_prompt"] == "模糊, 扭曲, 低质量"
    assert create.body["parameters"]["size"] == "1024*768"
    assert create.body["parameters"]["n"] == 2
    assert len(dashscope_fake.received("/api/v1/tasks/")) == 5  # 2 pending, 2 running, done


async def test_wanx_sends_n_1_by_default(providers: Running, dashscope_fake: FakeDashScope) -> None:
    request = P.ProviderImageRequest(model="wanx2.0-t2i-turbo", prompt="a shop")
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert len(answer.results[0].images) == 1  # not DashScope's default of 4 (billed per image)


async def test_a_failed_task_is_aborted_with_the_provider_reason(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.task_outcome = "FAILED"
    request = P.ProviderImageRequest(model="wanx2.1-t2i-plus", prompt="a shop")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(request, timeout=20)
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "algorithm failed to generate the image" in err.value.details()


async def test_a_task_failed_for_bad_input_is_invalid_argument(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.task_outcome = "FAILED"
    dashscope_fake.failed_code = "DataInspectionFailed"
    dashscope_fake.failed_message = "Input data may contain inappropriate content."
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="wanx2.1-t2i-plus", prompt="x"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inappropriate content" in err.value.details()


async def test_partial_success_returns_the_images_and_warns(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.task_outcome = "PARTIAL"
    request = P.ProviderImageRequest(model="wanx2.1-t2i-turbo", prompt="a shop", n=3)
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert len(answer.results[0].images) == 2
    assert len(answer.warnings) == 1 and "DataInspectionFailed" in answer.warnings[0]


async def test_a_failing_poll_is_retried(providers: Running, dashscope_fake: FakeDashScope) -> None:
    dashscope_fake.fail_next(500, path="/api/v1/tasks/")
    request = P.ProviderImageRequest(model="wanx2.1-t2i-turbo", prompt="a shop")
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert len(answer.results[0].images) == 1


async def test_a_provider_400_carries_its_message(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.fail_next(400, code="InvalidParameter", message="The prompt is too long.")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="wanx2.1-t2i-turbo", prompt="x"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "The prompt is too long." in err.value.details()


async def test_throttling_is_resource_exhausted(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.fail_next(429, message="Requests rate limit exceeded, please try again later.")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.GenerateImages(
            P.ProviderImageRequest(model="qwen-image-plus", prompt="x"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Throttling.RateQuota" in err.value.details()


@pytest.mark.parametrize(
    ("model", "call"),
    [("qwen-plus", "chat"), ("qwen-image-plus", "image"), ("wanx2.1-t2i-turbo", "image")],
)
async def test_a_wrong_key_is_failed_precondition_naming_the_variable(
    provider_fakes, model: str, call: str
) -> None:
    settings = providers_settings(provider_fakes, dashscope_api_key="sk-wrong")
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            if call == "chat":
                await running.stub.Chat(P.ChatRequest(model=model, prompt="hi"), timeout=10)
            else:
                request = P.ProviderImageRequest(model=model, prompt="hi")
                await running.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("DASHSCOPE_API_KEY rejected by DashScope")


async def test_a_result_image_over_the_size_cap_is_refused(provider_fakes) -> None:
    settings = providers_settings(provider_fakes, max_image_bytes=1024)
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            request = P.ProviderImageRequest(model="qwen-image-plus", prompt="x")
            await running.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "result image is larger than the 1024 byte limit" in err.value.details()
