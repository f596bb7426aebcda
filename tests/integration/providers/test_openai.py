"""GPT-5 chat and gpt-image-1 through the providers gRPC service, against the fake OpenAI."""

from __future__ import annotations

import base64
import io
import math

import grpc
import pytest
from google.protobuf import struct_pb2
from imagemesh.v1 import common_pb2, providers_pb2
from PIL import Image

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pngs import png
from tests.support.providers import Running, providers_settings, running_providers

PNG = png(32, 32)
P = providers_pb2


def text(value: str) -> P.ChatContentPart:
    return P.ChatContentPart(text=value)


def image(url: str, detail: str = "") -> P.ChatContentPart:
    return P.ChatContentPart(image=P.ChatImage(url=url, detail=detail))


async def test_chat_answers_text_usage_and_finish_reason(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    request = P.ChatRequest(
        model="gpt-5",
        messages=[
            P.ChatMessage(role="system", content=[text("You are terse.")]),
            P.ChatMessage(role="user", content=[text("Hello there")]),
        ],
    )
    answer = await providers.stub.Chat(request, timeout=10)
    assert answer.text == "You said: Hello there"
    assert answer.model.startswith("gpt-5")
    assert answer.finish_reason == "stop"
    assert answer.stream is False
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    sent = openai_fake.received("/chat/completions")[-1]
    assert sent.headers["authorization"] == f"Bearer {openai_fake.api_key}"


async def test_seed_shorthand_with_every_image_form(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    """system_prompt + prompt + images as URL, data URL, bare base64 and {url, detail}."""
    b64 = base64.b64encode(PNG).decode()
    request = P.ChatRequest(
        model="gpt-5",
        system_prompt="You are an image analysis expert.",
        prompt="Compare these images",
        images=[
            P.ChatImage(url="https://example.com/image1.jpg"),
            P.ChatImage(url=f"data:image/png;base64,{b64}"),
            P.ChatImage(url=b64),
            P.ChatImage(url="https://example.com/image2.jpg", detail="high"),
        ],
        temperature=0.7,
        max_tokens=1000,
    )
    answer = await providers.stub.Chat(request, timeout=10)
    assert answer.text == "You said: Compare these images (4 images)"
    body = openai_fake.received("/chat/completions")[-1].body
    # GPT-5 rules: max_completion_tokens, and no temperature other than 1.
    assert body["max_completion_tokens"] == 1000
    assert "max_tokens" not in body and "temperature" not in body
    urls = [p["image_url"] for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert urls[2]["url"] == f"data:image/png;base64,{b64}"  # the prefix was added
    assert urls[3] == {"url": "https://example.com/image2.jpg", "detail": "high"}


async def test_stream_yields_deltas_then_finish_and_usage(providers: Running) -> None:
    request = P.ChatRequest(model="gpt-5", prompt="tell me a short story")
    chunks = [c async for c in providers.stub.ChatStream(request, timeout=10)]
    assert "".join(c.delta for c in chunks) == "You said: tell me a short story"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage.total_tokens > 0


async def test_error_in_the_middle_of_a_stream_ends_it_with_a_status(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.stream_error_after = 2
    request = P.ChatRequest(model="gpt-5", prompt="one two three four")
    deltas = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for chunk in providers.stub.ChatStream(request, timeout=10):
            deltas.append(chunk.delta)
    assert "".join(deltas) == "You said:"
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "OpenAI failed mid-stream" in err.value.details()


async def test_a_503_is_retried_and_the_caller_sees_success(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(503)
    answer = await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    assert answer.text == "You said: hi"
    assert len(openai_fake.received("/chat/completions")) == 2


async def test_a_lasting_503_is_unavailable_after_the_allowed_attempts(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(503, times=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "OpenAI is unavailable (HTTP 503)" in err.value.details()
    assert len(openai_fake.received("/chat/completions")) == 3  # max_attempts


async def test_no_retry_is_started_that_the_deadline_cannot_wait_for(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(429, retry_after=0.9)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=0.6)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(openai_fake.received("/chat/completions")) == 1


async def test_a_stream_is_retried_before_its_first_byte(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(500)
    chunks = [c async for c in providers.stub.ChatStream(P.ChatRequest(model="gpt-5", prompt="hi"))]
    assert "".join(c.delta for c in chunks) == "You said: hi"


async def test_a_long_429_is_resource_exhausted_with_retry_after(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(429, retry_after=20, code="rate_limit_exceeded")
    call = providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "OpenAI rate limit" in err.value.details()
    assert ("retry-after", "20") in tuple(await call.trailing_metadata())
    assert len(openai_fake.received("/chat/completions")) == 1


async def test_a_short_429_is_waited_out(providers: Running, openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(429, retry_after=0.05)
    answer = await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    assert answer.text == "You said: hi"


async def test_a_provider_400_is_invalid_argument_with_its_message(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(400, code="invalid_value", message="Invalid 'messages[0].content'.")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Invalid 'messages[0].content'." in err.value.details()


async def test_a_bad_image_is_invalid_argument_before_any_upstream_call(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    request = P.ChatRequest(model="gpt-5", prompt="hi", images=[P.ChatImage(url="not an image")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.Chat(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images" in err.value.details() or "content[1]" in err.value.details()
    assert openai_fake.received() == []


def _decoded(img: common_pb2.Image) -> Image.Image:
    return Image.open(io.BytesIO(img.data))


async def test_batch_edit_with_per_image_prompts_and_masks(
    providers: Running, openai_fake: FakeOpenAI
) -> None:
    request = P.ProviderEditRequest(
        model="gpt-image-1",
        images=[common_pb2.ImageInput(data=PNG), common_pb2.ImageInput(data=PNG)],
        masks=[common_pb2.ImageInput(data=PNG), common_pb2.ImageInput(data=PNG)],
        prompts=["Add a modern sofa", "Add a vintage bookshelf"],
        n=2,
        size="1024x1024",
        extra=struct_pb2.Struct(fields={"response_format": struct_pb2.Value(string_value="url")}),
    )
    answer = await providers.stub.EditImages(request, timeout=20)
    assert answer.model == "gpt-image-1"
    assert (answer.total_images, answer.images_per_edit) == (2, 2)  # seed 000's counts
    assert [g.original_index for g in answer.results] == [0, 1]
    assert [g.prompt for g in answer.results] == ["Add a modern sofa", "Add a vintage bookshelf"]
    for group in answer.results:
        assert len(group.images) == 2
        assert group.created > 0
        for img in group.images:
            assert _decoded(img).size == (1024, 1024)
            assert (img.mime_type, img.width, img.height) == ("image/png", 1024, 1024)
    assert answer.usage.image_count == 4
    sent = openai_fake.received("/images/edits")
    assert sorted(r.body["prompt"] for r in sent) == [
        "Add a modern sofa",
        "Add a vintage bookshelf",
    ]
    for r in sent:
        assert r.files["image"][0][1] == "image/png" and r.files["mask"][0][1] == "image/png"
        assert "response_format" not in r.body  # gpt-image-1 rejects it


async def test_one_prompt_for_every_image(providers: Running) -> None:
    request = P.ProviderEditRequest(
        model="gpt-image-1",
        images=[common_pb2.ImageInput(data=PNG)] * 3,
        prompt="Add sunglasses to the person",
    )
    answer = await providers.stub.EditImages(request, timeout=20)
    assert [g.prompt for g in answer.results] == ["Add sunglasses to the person"] * 3
    assert (answer.total_images, answer.images_per_edit) == (3, 1)


@pytest.mark.parametrize(
    ("masks", "prompts", "named"),
    [
        (1, 0, "masks has 1 items and images has 2"),
        (0, 3, "prompts has 3 items and images has 2"),
    ],
)
async def test_length_mismatches_name_the_lists(
    providers: Running, openai_fake: FakeOpenAI, masks: int, prompts: int, named: str
) -> None:
    request = P.ProviderEditRequest(
        model="gpt-image-1",
        images=[common_pb2.ImageInput(data=PNG)] * 2,
        masks=[common_pb2.ImageInput(data=PNG)] * masks,
        prompts=["p"] * prompts,
        prompt="fallback",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await providers.stub.EditImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in err.value.details()
    assert openai_fake.received() == []


async def test_gpt_image_generation(providers: Running, openai_fake: FakeOpenAI) -> None:
    request = P.ProviderImageRequest(
        model="gpt-image-1", prompt="a watercolor fox", width=1024, height=1536, n=2
    )
    answer = await providers.stub.GenerateImages(request, timeout=20)
    assert [(_decoded(i).size) for i in answer.results[0].images] == [(1024, 1536)] * 2
    assert openai_fake.received("/images/generations")[-1].body["size"] == "1024x1536"


async def test_an_answer_over_the_message_limit_says_so(
    provider_fakes, openai_fake: FakeOpenAI
) -> None:
    openai_fake.noisy_images = True
    settings = providers_settings(provider_fakes, max_message_bytes=4 * 1024 * 1024)
    async with running_providers(settings) as running:
        request = P.ProviderImageRequest(model="gpt-image-1", prompt="static", n=2)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.stub.GenerateImages(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the 4 MB message limit; ask for fewer images" in err.value.details()


@pytest.mark.parametrize("hint", [math.inf, 1e400, -1e9])
async def test_an_unbounded_retry_after_is_no_overflow(
    providers: Running, openai_fake: FakeOpenAI, hint: float
) -> None:
    """`Retry-After: inf` (or huge, or negative) once overflowed into an INTERNAL error."""
    openai_fake.fail_next(429, times=5, retry_after=hint, code="rate_limit_exceeded")
    call = providers.stub.Chat(P.ChatRequest(model="gpt-5", prompt="hi"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    trailing = dict(await call.trailing_metadata())
    assert 1 <= int(trailing.get("retry-after", "1")) <= 86400
