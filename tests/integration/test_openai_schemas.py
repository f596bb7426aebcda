"""Every image route's answer, and every stream event, against OpenAI's own published schemas
(tests/schemas/openai, vendored from openai/openai-openapi), over the real mesh: generations and
edits (JSON and multipart, url and b64_json), their streams, and error envelopes."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fakes.pngs import png
from tests.support.mesh import Mesh
from tests.support.openai_schema import check, errors
from tests.support.sse import parse

SMALL = {"size": "64x64", "num_inference_steps": 2, "seed": 4}
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"


def post(mesh: Mesh, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{mesh.gateway_url}{path}", timeout=120, **kwargs)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_the_schemas_catch_what_we_used_to_answer() -> None:
    """The check can fail: our old shapes (a 64x64 size, a numeric error.code) do."""
    assert errors({"created": 1, "data": [], "size": "64x64"}, "ImagesResponse")
    old_error = {"error": {"message": "m", "type": "t", "param": None, "code": 400}}
    assert errors(old_error, "ErrorResponse")


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_generations_answer_an_images_response(mesh: Mesh, response_format: str) -> None:
    body = {"prompt": "a lighthouse", "response_format": response_format, "n": 2, **SMALL}
    answer = post(mesh, GENERATIONS, json=body)
    assert answer.status_code == 200, answer.text
    check(answer.json(), "ImagesResponse")
    assert answer.json()["usage"]["output_tokens"] == 2 * 16


def test_a_1024_square_generation_reports_its_size_as_openai_names_it(mesh: Mesh) -> None:
    body = {"prompt": "a lighthouse", "size": "1024x1024", "num_inference_steps": 2}
    answer = post(mesh, GENERATIONS, json={**body, "response_format": "b64_json"})
    assert answer.status_code == 200, answer.text
    check(answer.json(), "ImagesResponse")
    assert answer.json()["size"] == "1024x1024"


def test_json_and_multipart_edits_answer_an_images_response(mesh: Mesh) -> None:
    image = png(64, 64)
    json_answer = post(mesh, EDITS, json={"prompt": "blue sky", "image": data_url(image), **SMALL})
    assert json_answer.status_code == 200, json_answer.text
    check(json_answer.json(), "ImagesResponse")
    assert json_answer.json()["usage"]["input_tokens_details"]["image_tokens"] > 0
    form = post(
        mesh,
        EDITS,
        data={"prompt": "blue sky", "num_inference_steps": "2", "response_format": "b64_json"},
        files={"image": ("cat.png", image, "image/png")},
    )
    assert form.status_code == 200, form.text
    check(form.json(), "ImagesResponse")


@pytest.mark.parametrize(
    ("path", "kind", "extra"),
    [
        (GENERATIONS, "image_generation", {}),
        (EDITS, "image_edit", {"image": data_url(png(64, 64))}),
    ],
)
def test_stream_events_are_openais(mesh: Mesh, path: str, kind: str, extra: dict[str, Any]) -> None:
    body = {"prompt": "a kite", "stream": True, "partial_images": 1, **SMALL, **extra}
    answer = post(mesh, path, json=body)
    assert answer.headers["content-type"].startswith("text/event-stream"), answer.text
    events = parse(answer.text)
    schema = "ImageGenStreamEvent" if kind == "image_generation" else "ImageEditStreamEvent"
    openai_events = [e.data for e in events if not e.data["type"].endswith(".progress")]
    assert [e["type"] for e in openai_events] == [f"{kind}.partial_image", f"{kind}.completed"]
    for event in openai_events:
        check(event, schema)
    done = openai_events[-1]
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + 16
    assert Image.open(io.BytesIO(base64.b64decode(done["b64_json"]))).size == (64, 64)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (GENERATIONS, {"prompt": "x", "output_format": "bmp"}, 400, "invalid_value"),
        (GENERATIONS, {"prompt": "x", "negative_promt": "blur"}, 400, "unknown_parameter"),
        (GENERATIONS, {"prompt": "x", "model": "no-such-model"}, 404, "model_not_found"),
        (EDITS, {"prompt": "x"}, 400, "invalid_value"),
    ],
)
def test_errors_answer_an_error_response(
    mesh: Mesh, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    answer = post(mesh, path, json=body)
    assert answer.status_code == status, answer.text
    envelope = answer.json()
    check(envelope, "ErrorResponse")
    assert envelope["code"] == status and envelope["error"]["code"] == code
