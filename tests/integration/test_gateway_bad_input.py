"""Every bad input gets a 4xx envelope whose message names the field and what is allowed:
never a 500, never a traceback."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Mesh
from tests.support.website import Website, website

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
OK = {"prompt": "a cat", "size": "64x64", "num_inference_steps": 2, "response_format": "b64_json"}


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    with website() as site:
        site.add("/page.html", b"<html>hello</html>", content_type="text/html")
        yield site


def check(answer: httpx.Response, status: int, *words: str, param: str | None = None) -> dict:
    body = answer.json()
    assert answer.status_code == status, body
    assert body["code"] == status
    assert body["request_id"] == answer.headers["x-request-id"]
    assert body["error"]["message"] == body["message"]
    for word in words:
        assert word in body["message"], body["message"]
    if param is not None:
        assert body["error"]["param"] == param
    assert "Traceback" not in answer.text
    return body


@pytest.mark.parametrize(
    ("body", "words", "param"),
    [
        ({"n": 1}, ["prompt is required"], "prompt"),
        ({**OK, "prompt": ""}, ["prompt", "empty"], "prompt"),
        ({**OK, "prompt": 42}, ["prompt must be a string"], "prompt"),
        ({**OK, "n": "two"}, ["n must be an integer"], "n"),
        ({**OK, "n": 0}, ["n must be >= 1"], "n"),
        ({**OK, "n": 99}, ["n must be <= 10"], "n"),
        ({**OK, "n": 5}, ["n must be between 1 and 4 for qwen-image"], "n"),
        ({**OK, "size": "abc"}, ["size must be WIDTHxHEIGHT", "1024x1024", "abc"], "size"),
        ({**OK, "size": "100x100"}, ["width must be a multiple of 16"], "width"),
        (
            {**OK, "response_format": "gif"},
            ["response_format must be", "url", "b64_json", "gif"],
            "response_format",
        ),
        (
            {**OK, "num_inference_steps": 500},
            ["num_inference_steps must be <= 100"],
            "num_inference_steps",
        ),
        ({**OK, "seed": -1}, ["seed must be >= 0"], "seed"),
        ({**OK, "aspect_ratio": "5:1"}, ["aspect_ratio must be one of", "16:9"], "aspect_ratio"),
        ({"input": {"messages": []}}, ["input.messages[0].content[0].text"], None),
        (
            {
                "input": {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
                "parameters": {"size": "big"},
            },
            ["parameters.size must be WIDTHxHEIGHT"],
            "parameters.size",
        ),
    ],
)
def test_bad_generation_fields(mesh: Mesh, body: dict, words: list[str], param: str | None) -> None:
    check(
        httpx.post(mesh.gateway_url + GENERATIONS, json=body, timeout=30), 400, *words, param=param
    )


def test_malformed_json(mesh: Mesh) -> None:
    answer = httpx.post(
        mesh.gateway_url + GENERATIONS,
        content=b'{"prompt": "a cat", "n": ',
        headers={"Content-Type": "application/json"},
    )
    check(answer, 400, "not valid JSON", "line 1")


def test_a_json_array_is_not_a_request(mesh: Mesh) -> None:
    check(httpx.post(mesh.gateway_url + GENERATIONS, json=[OK]), 400, "must be a JSON object")


def test_unknown_model_lists_the_models_that_exist(mesh: Mesh) -> None:
    answer = httpx.post(mesh.gateway_url + GENERATIONS, json={**OK, "model": "dall-e-9"})
    check(answer, 404, "dall-e-9", "qwen-image", "wanx2.1-t2i-turbo", param="model")


def test_a_chat_model_on_the_image_endpoint(mesh: Mesh) -> None:
    answer = httpx.post(mesh.gateway_url + GENERATIONS, json={**OK, "model": "gpt-5"})
    check(answer, 400, "/v1/chat/completions", param="model")


def test_an_image_url_that_404s(mesh: Mesh, site: Website) -> None:
    answer = httpx.post(
        mesh.gateway_url + EDITS,
        json={**OK, "image": site.base + "/missing.png"},
        timeout=30,
    )
    check(answer, 400, "image", "HTTP 404", param="image")


def test_an_image_url_that_is_not_an_image(mesh: Mesh, site: Website) -> None:
    answer = httpx.post(
        mesh.gateway_url + EDITS, json={**OK, "image": [site.base + "/page.html"]}, timeout=30
    )
    check(answer, 400, "image[0]", "not an image", param="image[0]")


def test_a_data_url_that_is_not_an_image(mesh: Mesh) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(b"hello, not a png").decode()
    answer = httpx.post(mesh.gateway_url + EDITS, json={**OK, "image": data_url}, timeout=30)
    check(answer, 400, "image", "not a readable image", param="image")


def test_text_that_is_neither_url_nor_base64(mesh: Mesh) -> None:
    answer = httpx.post(mesh.gateway_url + EDITS, json={**OK, "image": "my cat!"}, timeout=30)
    check(answer, 400, "image", "http(s) URL", "data: URL", param="image")


def test_an_internal_address_is_not_fetched(mesh: Mesh) -> None:
    answer = httpx.post(
        mesh.gateway_url + EDITS,
        json={**OK, "image": "http://169.254.169.254/latest/meta-data/x.png"},
        timeout=30,
    )
    check(answer, 400, "image", "link-local", param="image")


def test_an_edit_without_an_image(mesh: Mesh) -> None:
    check(httpx.post(mesh.gateway_url + EDITS, json=OK, timeout=30), 400, "image is required")


def test_a_multipart_edit_with_an_empty_file(mesh: Mesh) -> None:
    answer = httpx.post(
        mesh.gateway_url + EDITS,
        data={"prompt": "a hat"},
        files={"image": ("cat.png", b"", "image/png")},
        timeout=30,
    )
    check(answer, 400, "image is empty", param="image")


def test_a_30_mb_body_is_refused_by_its_length(mesh: Mesh) -> None:
    body = b'{"prompt": "' + b"a" * (30 * 1024 * 1024) + b'"}'
    answer = httpx.post(
        mesh.gateway_url + GENERATIONS,
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    check(answer, 413, "larger than the", "MiB limit")


def test_a_30_mb_chunked_upload_is_cut_while_streaming(mesh: Mesh) -> None:
    """No Content-Length: the gateway counts while it reads and stops at the cap."""

    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    answer = httpx.post(
        mesh.gateway_url + EDITS,
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    check(answer, 413, "larger than the")


def test_unknown_endpoint_and_method(mesh: Mesh) -> None:
    check(httpx.get(mesh.gateway_url + "/v1/nothing"), 404, "no such endpoint")
    check(httpx.get(mesh.gateway_url + GENERATIONS), 405, "GET is not allowed")


def test_bad_chat_requests(mesh: Mesh) -> None:
    url = mesh.gateway_url + "/v1/chat/completions"
    check(httpx.post(url, json={"model": "gpt-5"}), 400, "messages", "prompt")
    check(
        httpx.post(url, json={"model": "gpt-5", "messages": [{"role": "robot", "content": "x"}]}),
        400,
        "messages[0].role must be",
    )
    check(httpx.post(url, json={"model": "qwen-image", "prompt": "hi"}), 400, "is served at")
