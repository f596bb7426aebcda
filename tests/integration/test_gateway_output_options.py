"""OpenAI's output options through the gateway, over the real mesh: the bytes and the stored
object follow `output_format` / `output_compression`, `quality` sets the steps, options that
cannot apply and misspelled fields of ours are 400s that say why, unknown fields are ignored, and
OpenAI-shaped requests get seed 003's defaults (true CFG with the negative prompt "") while
DashScope-shaped ones keep seed 002's."""

from __future__ import annotations

import base64
import io
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from PIL import Image

from tests.fakes.pngs import png
from tests.support.mesh import Mesh
from tests.support.sse import parse

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
SMALL = {"prompt": "a red kite over the sea", "size": "64x64", "num_inference_steps": 2, "seed": 9}
B64 = {"response_format": "b64_json"}


def post(mesh: Mesh, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{mesh.gateway_url}{path}", timeout=120, **kwargs)


def generated(mesh: Mesh, **fields: Any) -> bytes:
    answer = post(mesh, GENERATIONS, json={**SMALL, **B64, **fields})
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()["data"][0]["b64_json"])


def pil_format(data: bytes) -> str:
    return str(Image.open(io.BytesIO(data)).format)


@pytest.mark.parametrize(
    ("output_format", "pil", "mime", "extension"),
    [("jpeg", "JPEG", "image/jpeg", ".jpg"), ("webp", "WEBP", "image/webp", ".webp")],
)
def test_the_stored_object_follows_the_output_format(
    mesh: Mesh, output_format: str, pil: str, mime: str, extension: str
) -> None:
    answer = post(mesh, GENERATIONS, json={**SMALL, "output_format": output_format})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["output_format"] == output_format
    link = body["data"][0]["url"]
    assert urlparse(link).path.endswith(extension), link
    stored = httpx.get(link, timeout=30)
    assert stored.status_code == 200 and stored.headers["content-type"] == mime
    assert pil_format(stored.content) == pil


def test_output_compression_makes_smaller_jpegs(mesh: Mesh) -> None:
    small = generated(mesh, output_format="jpeg", output_compression=5)
    large = generated(mesh, output_format="jpeg", output_compression=100)
    assert pil_format(small) == pil_format(large) == "JPEG"
    assert len(small) < len(large)


def test_an_edit_and_a_stream_encode_as_asked(mesh: Mesh) -> None:
    form = post(
        mesh,
        EDITS,
        data={"prompt": "blue sky", "num_inference_steps": "2", "output_format": "webp", **B64},
        files={"image": ("cat.png", png(64, 64), "image/png")},
    )
    assert form.status_code == 200, form.text
    assert pil_format(base64.b64decode(form.json()["data"][0]["b64_json"])) == "WEBP"
    streamed = post(mesh, GENERATIONS, json={**SMALL, "stream": True, "output_format": "jpeg"})
    done = parse(streamed.text)[-1].data
    assert done["type"] == "image_generation.completed" and done["output_format"] == "jpeg"
    assert pil_format(base64.b64decode(done["b64_json"])) == "JPEG"


def test_quality_sets_the_steps_and_given_steps_win(mesh: Mesh) -> None:
    def total_steps(**fields: Any) -> int:
        body = {k: v for k, v in SMALL.items() if k != "num_inference_steps"}
        body.update(stream=True, **fields)
        events = parse(post(mesh, GENERATIONS, json=body).text)
        return int(events[0].data["total_steps"])

    assert total_steps(quality="low") == 10  # the catalogue's qwen-image table
    assert total_steps(quality="low", num_inference_steps=3) == 3


BAD = {
    "unknown output_format": (
        {"output_format": "bmp"},
        "output_format must be 'png', 'jpeg' or 'webp' (got \"bmp\")",
        "output_format",
    ),
    "output_compression too high": (
        {"output_compression": 101},
        "output_compression must be <= 100 (got 101)",
        "output_compression",
    ),
    "unknown quality": ({"quality": "ultra"}, "quality must be 'low', 'medium'", "quality"),
    "transparent background": (
        {"background": "transparent"},
        "background 'transparent' cannot apply to qwen-image: it makes opaque RGB pictures",
        "background",
    ),
    "input_fidelity": (
        {"input_fidelity": "high"},
        "input_fidelity cannot apply to qwen-image: it is gpt-image-1's setting",
        "input_fidelity",
    ),
    "negative_promt": (
        {"negative_promt": "blur"},
        "unknown field negative_promt: did you mean negative_prompt?",
        "negative_promt",
    ),
    "num_inference_step": (
        {"num_inference_step": 4},
        "unknown field num_inference_step: did you mean num_inference_steps?",
        "num_inference_step",
    ),
    "output_formt": (
        {"output_formt": "jpeg"},
        "unknown field output_formt: did you mean output_format?",
        "output_formt",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_and_inapplicable_options_are_400s_that_say_why(mesh: Mesh, case: str) -> None:
    fields, message, param = BAD[case]
    answer = post(mesh, GENERATIONS, json={**SMALL, **fields})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert message in body["message"] and body["error"]["param"] == param, body


def test_misspellings_are_caught_in_dashscope_parameters_and_edit_forms(mesh: Mesh) -> None:
    dashscope = post(
        mesh,
        GENERATIONS,
        json={"input": {"prompt": "a kite"}, "parameters": {"guidance_scal": 4, "size": "64*64"}},
    )
    assert dashscope.status_code == 400
    assert "unknown field parameters.guidance_scal: did you mean parameters.guidance_scale?" in (
        dashscope.text
    )
    form = post(
        mesh,
        EDITS,
        data={"prompt": "blue", "true_cfg_scal": "2"},
        files={"image": ("cat.png", png(64, 64), "image/png")},
    )
    assert form.status_code == 400 and "did you mean true_cfg_scale?" in form.text


def test_fields_nobody_knows_are_ignored(mesh: Mesh) -> None:
    plain = generated(mesh)
    assert generated(mesh, user="u-1", moderation="low", frobnicate=True, style="vivid") == plain


def test_openai_shaped_requests_run_true_cfg_by_default(mesh: Mesh) -> None:
    """Seed 003: true CFG 4.0 with the negative prompt "": the default picture is the one of
    an explicit "" and 4.0, and not the one without CFG (scale 1)."""
    default = generated(mesh)
    assert generated(mesh, negative_prompt="", true_cfg_scale=4.0) == default
    assert generated(mesh, true_cfg_scale=1.0) != default


def test_dashscope_shaped_requests_keep_seed_002s_defaults(mesh: Mesh) -> None:
    """No true CFG there unless a negative prompt is given ("" counts as none)."""
    answer = post(
        mesh,
        GENERATIONS,
        json={
            "model": "qwen-image",
            "input": {"messages": [{"role": "user", "content": [{"text": SMALL["prompt"]}]}]},
            "parameters": {
                "size": "64*64",
                "num_inference_steps": 2,
                "seed": 9,
                "negative_prompt": "",
                **B64,
            },
        },
    )
    assert answer.status_code == 200, answer.text
    content = answer.json()["output"]["choices"][0]["message"]["content"][0]
    assert base64.b64decode(content["b64_json"]) == generated(mesh, true_cfg_scale=1.0)


def test_a_request_without_a_size_gets_the_default_size(mesh: Mesh) -> None:
    body = {k: v for k, v in SMALL.items() if k != "size"}
    answer = post(mesh, GENERATIONS, json={**body, **B64})
    assert answer.status_code == 200, answer.text
    data = base64.b64decode(answer.json()["data"][0]["b64_json"])
    # GATEWAY_OPENAI_DEFAULT_SIZE: the test mesh's 64x64 (seed 003's 1664x928 in production).
    assert Image.open(io.BytesIO(data)).size == (64, 64)
