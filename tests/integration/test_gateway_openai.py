"""The official OpenAI Python client against the gateway, over the real mesh: generations (url
and b64_json), edits (multipart uploads, and JSON images by URL / data URL / our own links),
the model list, and hosted models answering 503 while their key is not set."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image

from tests.support.mesh import Mesh
from tests.support.website import Website, website

STEPS = {"num_inference_steps": 2}


def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{mesh.gateway_url}/v1", api_key="none", max_retries=0, timeout=120
    )


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    with website() as site:
        yield site


def test_generate_b64_json(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="qwen-image",
        prompt="a red fox in the snow",
        size="64x64",
        n=2,
        response_format="b64_json",
        extra_body={**STEPS, "seed": 7},
    )
    assert len(result.data) == 2
    for item in result.data:
        image = picture(base64.b64decode(item.b64_json))
        assert (image.format, image.size) == ("PNG", (64, 64))


def test_generate_url_links_into_our_bucket(client: openai.OpenAI, mesh: Mesh) -> None:
    result = client.images.generate(
        model="Qwen/Qwen-Image",
        prompt="a lighthouse",
        size="96x64",
        response_format="url",
        extra_body=STEPS,
    )
    [item] = result.data
    assert item.url.startswith(mesh.link_prefix)
    image = picture(httpx.get(item.url, timeout=30).raise_for_status().content)
    assert (image.format, image.size) == ("PNG", (96, 64))


def test_the_envelope_and_request_id(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        prompt="a teapot",
        size="64x64",
        response_format="b64_json",
        extra_body=STEPS,
        extra_headers={"X-Request-ID": "req-envelope-1"},
    )
    body = raw.http_response.json()
    assert (body["code"], body["message"], body["request_id"]) == (0, "success", "req-envelope-1")
    assert raw.http_response.headers["x-request-id"] == "req-envelope-1"
    assert "model;dur=" in raw.http_response.headers["server-timing"]
    assert isinstance(body["created"], int)
    text = body["usage"]["input_tokens"]  # "a teapot" by the tiny model's tokenizer
    assert text > 0 and body["usage"] == {
        "width": 64,
        "height": 64,
        "image_count": 1,
        "input_tokens": text,
        "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
        "output_tokens": (64 // 16) * (64 // 16),
        "total_tokens": text + 16,
    }
    assert raw.parse().usage.total_tokens == text + 16  # the SDK's typed view reads it
    assert body["model"] == "qwen-image"


def test_edit_multipart_upload(client: openai.OpenAI) -> None:
    result = client.images.edit(
        model="qwen-image-edit",
        image=("cat.png", png(80, 64), "image/png"),
        prompt="give the cat a party hat",
        size="64x64",
        response_format="b64_json",
        extra_body=STEPS,
    )
    [item] = result.data
    image = picture(base64.b64decode(item.b64_json))
    assert (image.format, image.size) == ("PNG", (64, 64))


def test_edit_json_by_url_and_data_url(mesh: Mesh, site: Website) -> None:
    url = site.add("/cat.png", png(64, 64))
    data_url = "data:image/png;base64," + base64.b64encode(png(64, 64, (0, 90, 200))).decode()
    for image in (url, data_url, base64.b64encode(png()).decode()):
        answer = httpx.post(
            f"{mesh.gateway_url}/v1/images/edits",
            json={
                "model": "qwen-image-edit",
                "image": image,
                "prompt": "make it blue",
                "size": "64x64",
                "response_format": "url",
                **STEPS,
            },
            timeout=120,
        )
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["code"] == 0 and body["usage"]["image_count"] == 1
        edited = picture(httpx.get(body["data"][0]["url"], timeout=30).content)
        assert edited.size == (64, 64)


def test_edit_reads_our_own_links(client: openai.OpenAI, mesh: Mesh) -> None:
    """A link we gave out (presigned, in our bucket) is read back through the storage service."""
    made = client.images.generate(
        prompt="a boat", size="64x64", response_format="url", extra_body=STEPS
    )
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/edits",
        json={
            "image": made.data[0].url,
            "prompt": "add a sail",
            "size": "64x64",
            "response_format": "b64_json",
            **STEPS,
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.json()


def test_models_lists_the_catalogue(client: openai.OpenAI, mesh: Mesh) -> None:
    models = {model.id: model for model in client.models.list()}
    assert {
        "qwen-image",
        "Qwen/Qwen-Image",
        "aliyun/aliyun/qwen-image-plus",
        "qwen-image-edit",
        "qwen-image-edit-plus",
        "gpt-5",
        "gpt-image-1",
        "qwen-plus",
        "wanx2.1-t2i-turbo",
        "star-3-alpha-t2i",
        "liblib-custom",
    } <= set(models)
    body = httpx.get(f"{mesh.gateway_url}/v1/models").json()
    assert (body["code"], body["object"], body["project"]) == (0, "list", "imagemesh")
    by_name = {item["model"]: item for item in body["data"]}
    assert by_name["qwen-image"]["url"].endswith("/v1/images/generations")
    assert by_name["qwen-image-edit"]["url"].endswith("/v1/images/edits")
    assert by_name["qwen-image"]["ready"] is True
    assert by_name["qwen-image"]["object"] == "model" and by_name["gpt-5"]["owned_by"] == "openai"
    # No provider keys in the test mesh: hosted models are listed, not ready, with the reason.
    assert by_name["gpt-5"]["ready"] is False and "OPENAI_API_KEY" in by_name["gpt-5"]["reason"]


def test_hosted_models_without_a_key_answer_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert "OPENAI_API_KEY" in caught.value.message
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model="wanx2.1-t2i-turbo", prompt="a cat")
    assert caught.value.status_code == 503 and "DASHSCOPE_API_KEY" in caught.value.message
