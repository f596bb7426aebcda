"""Hosted models through the gateway: the OpenAI SDK's chat (plain and streamed), hosted image
models (their images stored in our bucket), prompt_extend, and provider failures mapped to the
envelope (429 + Retry-After, 502). A providers process talks to the local fake providers (real
wire protocols); a second gateway routes to it, over the mesh's storage and model servers."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image

from tests.fakes.fixtures import ProviderFakes
from tests.support.hosted import hosted_gateway
from tests.support.mesh import Mesh
from tests.support.openai_schema import check


@pytest.fixture(scope="module")
def gateway(mesh: Mesh, provider_fakes: ProviderFakes) -> Iterator[str]:
    with hosted_gateway(mesh, provider_fakes, "gateway-hosted") as hosted:
        yield hosted.url


@pytest.fixture
def fakes(provider_fakes: ProviderFakes) -> Iterator[ProviderFakes]:
    provider_fakes.reset()
    yield provider_fakes
    provider_fakes.reset()


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0, timeout=60)


def test_chat(client: openai.OpenAI, fakes: ProviderFakes) -> None:
    answer = client.chat.completions.create(
        model="gpt-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
    )
    assert (answer.choices[0].message.content or "").startswith("You said: hello there")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert answer.code == 0  # type: ignore[attr-defined]  # the envelope's field


def test_chat_stream(client: openai.OpenAI, fakes: ProviderFakes) -> None:
    stream = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me"
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_models_marks_hosted_models_ready(gateway: str) -> None:
    body = httpx.get(f"{gateway}/v1/models").json()
    ready = {item["model"]: item["ready"] for item in body["data"]}
    assert ready["gpt-5"] and ready["qwen-plus"] and ready["wanx2.1-t2i-turbo"]


def test_hosted_image_models_are_stored_in_our_bucket(
    gateway: str, mesh: Mesh, fakes: ProviderFakes
) -> None:
    answer = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "wanx2.1-t2i-turbo", "prompt": "a kite", "size": "1024*1024", "n": 1},
        timeout=60,
    )
    body = answer.json()
    assert answer.status_code == 200, body
    link = body["data"][0]["url"]
    assert link.startswith(mesh.link_prefix)
    assert Image.open(io.BytesIO(httpx.get(link).content)).format == "PNG"


def test_hosted_generation_b64_and_edit(client: openai.OpenAI, fakes: ProviderFakes) -> None:
    made = client.images.generate(
        model="gpt-image-1", prompt="a kite", size="1024x1024", response_format="b64_json"
    )
    png = base64.b64decode(made.data[0].b64_json)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    edited = client.images.edit(
        model="gpt-image-1",
        image=[("a.png", png, "image/png"), ("b.png", png, "image/png")],
        prompt="add a tail",
        response_format="b64_json",
    )
    assert len(edited.data) == 2


def test_openai_output_options_reach_gpt_image_1_and_others_refuse_them(
    gateway: str, fakes: ProviderFakes
) -> None:
    options = {"output_format": "jpeg", "output_compression": 50, "quality": "high"}
    answer = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "gpt-image-1", "prompt": "a kite", "size": "1024x1024", **options},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    check(answer.json(), "ImagesResponse")
    sent = fakes.openai.received("/images/generations")[-1].body
    assert {k: sent[k] for k in options} == options
    refused = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "wanx2.1-t2i-turbo", "prompt": "a kite", "output_format": "jpeg"},
        timeout=60,
    )
    assert refused.status_code == 400
    assert (
        "output_format 'jpeg' cannot apply to wanx2.1-t2i-turbo: it answers PNG only"
        in (refused.json()["message"])
    )


def test_prompt_extend_rewrites_through_the_chat_model(gateway: str, fakes: ProviderFakes) -> None:
    fakes.dashscope.reply = "A red kite over green hills, golden light."
    answer = httpx.post(
        f"{gateway}/v1/images/generations",
        json={
            "model": "qwen-image",
            "input": {"messages": [{"role": "user", "content": [{"text": "风筝"}]}]},
            "parameters": {
                "prompt_extend": True,
                "size": "64*64",
                "num_inference_steps": 2,
                "response_format": "b64_json",
            },
        },
        timeout=60,
    )
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["output"]["actual_prompt"] == "A red kite over green hills, golden light."


def test_provider_rate_limit_is_429_with_its_retry_after(
    client: openai.OpenAI, fakes: ProviderFakes
) -> None:
    fakes.openai.fail_next(429, times=3, retry_after=30)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]  # error.code


def test_a_failed_provider_task_is_502(gateway: str, fakes: ProviderFakes) -> None:
    fakes.dashscope.task_outcome = "FAILED"
    answer = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "wanx2.1-t2i-plus", "prompt": "a kite"},
        timeout=60,
    )
    body = answer.json()
    assert answer.status_code == 502 and body["code"] == 502, body
    assert "wanx2.1-t2i-plus failed" in body["message"]
