"""The providers service as a whole: ListModels, missing keys, unknown models, timeouts and
refused connections, and prompt rewriting (RewritePrompt)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from imagemesh.v1 import providers_pb2

from tests.fakes.dashscope_server import FakeDashScope
from tests.fakes.openai_server import FakeOpenAI
from tests.support.ports import free_port
from tests.support.providers import Running, providers_settings, running_providers

P = providers_pb2
ALL_MODELS = {
    "gpt-5",
    "gpt-image-1",
    "qwen-plus",
    "qwen-image-plus",
    "wanx2.1-t2i-turbo",
    "wanx2.1-t2i-plus",
    "wanx2.0-t2i-turbo",
    "star-3-alpha-t2i",
    "star-3-alpha-i2i",
    "liblib-custom",
}


@pytest.fixture(scope="module")
async def keyless() -> AsyncIterator[Running]:
    """A providers server with no provider key at all."""
    async with running_providers(providers_settings(None)) as running:
        yield running


async def test_list_models_says_who_serves_what(providers: Running) -> None:
    answer = await providers.stub.ListModels(P.ListModelsRequest(), timeout=5)
    models = {m.name: m for m in answer.models}
    assert set(models) == ALL_MODELS
    assert all(m.ready and not m.reason for m in models.values())
    assert (models["gpt-5"].provider, models["gpt-5"].kind) == ("openai", "chat")
    assert list(models["gpt-5"].capabilities) == ["chat", "chat_stream"]
    assert list(models["gpt-image-1"].capabilities) == ["generate", "edit"]
    assert models["wanx2.1-t2i-plus"].task_type == "dashscope-wanx"
    assert models["liblib-custom"].provider == "liblibai"


async def test_without_keys_models_are_not_ready_and_say_what_to_set(keyless: Running) -> None:
    answer = await keyless.stub.ListModels(P.ListModelsRequest(), timeout=5)
    models = {m.name: m for m in answer.models}
    assert not any(m.ready for m in models.values())
    assert models["gpt-5"].reason == "set OPENAI_API_KEY to use gpt-5"
    assert models["qwen-image-plus"].reason == "set DASHSCOPE_API_KEY to use qwen-image-plus"
    assert "LIBLIB_ACCESS_KEY" in models["star-3-alpha-t2i"].reason


@pytest.mark.parametrize(
    ("model", "env"),
    [("gpt-5", "OPENAI_API_KEY"), ("qwen-plus", "DASHSCOPE_API_KEY")],
)
async def test_without_a_key_calls_are_unavailable(keyless: Running, model: str, env: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await keyless.stub.Chat(P.ChatRequest(model=model, prompt="hi"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == f"set {env} to use {model}"


async def test_an_unknown_model_is_not_found_and_lists_the_models(providers: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="gpt-4o", prompt="hi"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'gpt-4o'" in err.value.details() and "qwen-plus" in err.value.details()


async def test_a_call_the_model_does_not_answer_is_invalid(providers: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="wanx2.1-t2i-turbo", prompt="hi"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "use GenerateImages" in err.value.details()


async def test_a_slow_provider_ends_at_the_callers_deadline(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.delay(5, "/chat/completions")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_slow_provider_is_unavailable_after_the_request_timeout(
    provider_fakes, openai_fake: FakeOpenAI
) -> None:
    openai_fake.delay(5, "/chat/completions")
    settings = providers_settings(provider_fakes, request_timeout_seconds=0.2, max_attempts=2)
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "OpenAI did not answer in time" in err.value.details()


async def test_a_refused_connection_is_unavailable(provider_fakes) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = providers_settings(provider_fakes, dashscope_base_url=closed)
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            request = P.ProviderImageRequest(model="wanx2.1-t2i-turbo", prompt="x")
            await running.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"cannot reach DashScope at {closed}" in err.value.details()


# -- RewritePrompt ------------------------------------------------------------------------------


async def test_an_english_prompt_is_polished_in_english(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.reply = '"A red fox in a snowy birch forest, watercolor, soft morning light"'
    answer = await providers.stub.RewritePrompt(P.RewritePromptRequest(prompt="a fox"), timeout=10)
    assert answer.rewritten and answer.model == "qwen-plus" and answer.language == "en"
    assert answer.orig_prompt == "a fox"
    assert answer.actual_prompt == (
        "A red fox in a snowy birch forest, watercolor, soft morning light"
    )
    system = dashscope_fake.received("/chat/completions")[-1].body["messages"][0]
    assert system["role"] == "system" and "English" in system["content"]


async def test_a_chinese_prompt_is_polished_in_chinese(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.reply = "一只红狐狸站在雪后的白桦林中，水彩风格，清晨柔光"
    answer = await providers.stub.RewritePrompt(
        P.RewritePromptRequest(prompt="一只狐狸"), timeout=10
    )
    assert answer.rewritten and answer.language == "zh"
    assert answer.actual_prompt == "一只红狐狸站在雪后的白桦林中，水彩风格，清晨柔光"
    system = dashscope_fake.received("/chat/completions")[-1].body["messages"][0]
    assert "中文" in system["content"]


async def test_another_rewrite_model_can_be_asked_for(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.reply = "A fox, photographed at dawn"
    answer = await providers.stub.RewritePrompt(
        P.RewritePromptRequest(prompt="a fox", model="gpt-5"), timeout=10
    )
    assert (answer.rewritten, answer.model) == (True, "gpt-5")


async def test_without_a_key_the_prompt_is_kept_and_the_answer_says_why(keyless: Running) -> None:
    answer = await keyless.stub.RewritePrompt(P.RewritePromptRequest(prompt="a fox"), timeout=10)
    assert not answer.rewritten
    assert answer.actual_prompt == answer.orig_prompt == "a fox"
    assert answer.reason == "set DASHSCOPE_API_KEY to use qwen-plus"


async def test_a_failing_rewrite_model_never_fails_the_call(
    providers: Running, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.fail_next(500, times=5)
    answer = await providers.stub.RewritePrompt(P.RewritePromptRequest(prompt="a fox"), timeout=10)
    assert not answer.rewritten and answer.actual_prompt == "a fox"
    assert "DashScope is unavailable" in answer.reason


async def test_no_rewrite_model_configured(provider_fakes) -> None:
    settings = providers_settings(provider_fakes, rewrite_model="")
    async with running_providers(settings) as running:
        answer = await running.stub.RewritePrompt(
            P.RewritePromptRequest(prompt="a fox"), timeout=10
        )
    assert not answer.rewritten and answer.actual_prompt == "a fox"
    assert "PROVIDERS_REWRITE_MODEL" in answer.reason


async def test_httpcores_own_pool_still_works(provider_fakes, openai_fake: FakeOpenAI) -> None:
    """PROVIDERS_HTTP_TRANSPORT=httpx: the fallback if the aiohttp pool ever misbehaves."""
    openai_fake.fail_next(503)
    settings = providers_settings(provider_fakes, http_transport="httpx")
    async with running_providers(settings) as running:
        answer = await running.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
        chunks = [
            c.delta
            async for c in running.stub.ChatStream(P.ChatRequest(model="gpt-5", prompt="yo"))
        ]
    assert answer.text == "You said: hi" and "".join(chunks) == "You said: yo"
