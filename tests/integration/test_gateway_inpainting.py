"""Masks and img2img through the gateway, over the real mesh, as a user sends them: the OpenAI
SDK's multipart edits (image + mask files), JSON edits (data URL / bare base64), DashScope's
`input.mask_image_url`, and the task API (seed 001's `image` / `mask`, DashScope's async
`base_image_url` / `mask_image_url`). Each answer is checked by the PNG bytes the user gets:
size, the masked half redrawn, the other half no further from the input than the tiny VAE's
round trip. Bad masks and strengths answer 400 naming the field.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.support import sse, tiny_models
from tests.support.inpainting import (
    left_half_alpha_mask,
    left_half_grey_mask,
    mean_moved,
    pixels,
    png,
    round_trip,
    sample_image,
)
from tests.support.mesh import Mesh

SIDE = 256
FAST = {"num_inference_steps": 2, "seed": 11}
IMAGE = png(sample_image(SIDE, SIDE))
MASK = png(left_half_alpha_mask(SIDE, SIDE))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{mesh.gateway_url}/v1", api_key="none", max_retries=0, timeout=300
    )


@pytest.fixture(scope="module")
def kept() -> np.ndarray:
    return round_trip(tiny_models.TINY_IMAGE_DIR, sample_image(SIDE, SIDE))


def assert_inpainted(out: np.ndarray, kept: np.ndarray) -> None:
    assert out.shape == (SIDE, SIDE, 3)
    inside = mean_moved(out[:, : SIDE // 2], kept[:, : SIDE // 2])
    far_outside = mean_moved(out[:, 3 * SIDE // 4 :], kept[:, 3 * SIDE // 4 :])
    assert far_outside < 1.5, far_outside
    assert inside > 8 and inside > 10 * far_outside, (inside, far_outside)


def test_openai_sdk_multipart_mask_inpaints_on_qwen_image(
    client: openai.OpenAI, kept: np.ndarray
) -> None:
    result = client.images.edit(
        model="qwen-image",
        image=("fox.png", IMAGE, "image/png"),
        mask=("mask.png", MASK, "image/png"),
        prompt="a red fox",
        response_format="b64_json",
        extra_body=FAST,
    )
    (item,) = result.data
    data = base64.b64decode(item.b64_json or "")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert_inpainted(pixels(data), kept)


def test_json_mask_as_bare_base64_white_means_change_gives_the_same_picture(
    mesh: Mesh, client: openai.OpenAI
) -> None:
    grey = base64.b64encode(png(left_half_grey_mask(SIDE, SIDE))).decode()
    answers = []
    for mask in (data_url(MASK), grey):
        answer = httpx.post(
            f"{mesh.gateway_url}/v1/images/edits",
            json={
                "model": "qwen-image",
                "prompt": "a red fox",
                "image": data_url(IMAGE),
                "mask": mask,
                "response_format": "b64_json",
                **FAST,
            },
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        answers.append(answer.json()["data"][0]["b64_json"])
    assert answers[0] == answers[1]


def test_img2img_strength_on_qwen_image(mesh: Mesh, kept: np.ndarray) -> None:
    moved = {}
    for strength in (0.25, 1.0):
        answer = httpx.post(
            f"{mesh.gateway_url}/v1/images/edits",
            json={
                "model": "qwen-image",
                "prompt": "a red fox",
                "image": data_url(IMAGE),
                "strength": strength,
                "response_format": "b64_json",
                **FAST,
                "num_inference_steps": 4,
            },
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        out = pixels(base64.b64decode(answer.json()["data"][0]["b64_json"]))
        assert out.shape == (SIDE, SIDE, 3)  # the input's size
        moved[strength] = mean_moved(out, kept)
    assert moved[0.25] < moved[1.0], moved


def test_a_mask_to_qwen_image_edit_is_inpainted_at_the_inputs_size(
    client: openai.OpenAI,
) -> None:
    small = png(sample_image(128, 128))
    result = client.images.edit(
        model="qwen-image-edit",
        image=("fox.png", small, "image/png"),
        mask=("mask.png", png(left_half_alpha_mask(128, 128)), "image/png"),
        prompt="give it a hat",
        response_format="b64_json",
        extra_body=FAST,
    )
    assert pixels(base64.b64decode(result.data[0].b64_json or "")).shape == (128, 128, 3)


def test_dashscope_mask_image_url_inpaints(mesh: Mesh, kept: np.ndarray) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/api/v1/services/aigc/multimodal-generation/generation",
        json={
            "model": "qwen-image",
            "input": {
                "messages": [
                    {"role": "user", "content": [{"image": data_url(IMAGE)}, {"text": "a fox"}]}
                ],
                "mask_image_url": data_url(MASK),
            },
            "parameters": {**FAST, "response_format": "b64_json"},
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    (content,) = answer.json()["output"]["choices"][0]["message"]["content"]
    assert_inpainted(pixels(base64.b64decode(content["b64_json"])), kept)


def _download(url: str) -> bytes:
    got = httpx.get(url, timeout=30)
    assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"
    return got.content


def test_a_seed_001_task_with_image_and_mask(mesh: Mesh, kept: np.ndarray) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={
            "model": "qwen-image",
            "parameters": {
                "prompt": "a fox",
                "image": data_url(IMAGE),
                "mask": data_url(MASK),
                **FAST,
            },
            "is_async": False,
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results["status"] == "completed", results
    (image,) = results["result"]["images"]
    assert_inpainted(pixels(_download(image["url"])), kept)
    # What is shown back keeps a note, not the inline bytes.
    assert results["result"]["parameters"]["image"].startswith("(inline image, ")


def test_a_dashscope_async_task_with_base_and_mask_image_urls(mesh: Mesh, kept: np.ndarray) -> None:
    created = httpx.post(
        f"{mesh.gateway_url}/api/v1/services/aigc/text2image/image-synthesis",
        json={
            "model": "qwen-image",
            "input": {
                "prompt": "a fox",
                "base_image_url": data_url(IMAGE),
                "mask_image_url": data_url(MASK),
            },
            "parameters": FAST,
        },
        headers={"X-DashScope-Async": "enable"},
        timeout=60,
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["output"]["task_id"]
    deadline = time.monotonic() + 300
    while True:
        output = httpx.get(f"{mesh.gateway_url}/api/v1/tasks/{task_id}", timeout=30).json()[
            "output"
        ]
        if output["task_status"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert output["task_status"] == "SUCCEEDED", output
    assert_inpainted(pixels(_download(output["results"][0]["url"])), kept)


def _edit(mesh: Mesh, **fields: Any) -> httpx.Response:
    body = {"model": "qwen-image", "prompt": "a fox", "image": data_url(IMAGE), **FAST, **fields}
    return httpx.post(f"{mesh.gateway_url}/v1/images/edits", json=body, timeout=60)


BAD = {
    "mask of another size": (
        {"mask": data_url(png(left_half_alpha_mask(64, 32)))},
        f"mask is 64x32 but image is {SIDE}x{SIDE}",
        "mask",
    ),
    "strength zero": ({"strength": 0}, "strength must be > 0 (got 0)", "strength"),
    "strength above one": ({"strength": 2}, "strength must be <= 1 (got 2)", "strength"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_masks_and_strengths_answer_400_naming_the_field(mesh: Mesh, case: str) -> None:
    fields, says, param = BAD[case]
    answer = _edit(mesh, **fields)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert says in error["message"] and error["error"]["param"] == param, error


def test_a_task_whose_mask_is_of_another_size_is_refused_at_create(mesh: Mesh) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={
            "model": "qwen-image",
            "parameters": {
                "prompt": "a fox",
                "image": data_url(IMAGE),
                "mask": data_url(png(left_half_alpha_mask(64, 32))),
            },
        },
        timeout=60,
    )
    assert answer.status_code == 400, answer.text
    assert f"mask is 64x32 but parameters.image is {SIDE}x{SIDE}" in answer.json()["message"]


def test_a_streamed_img2img_counts_the_steps_that_run_then_answers_the_image(mesh: Mesh) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/edits",
        json={
            "model": "qwen-image",
            "prompt": "a red fox",
            "image": data_url(IMAGE),
            "strength": 0.5,
            "stream": True,
            "partial_images": 1,
            **FAST,
            "num_inference_steps": 4,
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    events = sse.parse(answer.text)
    steps = [e.data for e in events if e.event == "image_edit.progress" and e.data["step"]]
    assert [(s["step"], s["total_steps"]) for s in steps] == [(1, 2), (2, 2)]
    assert [e.event for e in events].count("image_edit.partial_image") == 1
    (done,) = [e.data for e in events if e.event == "image_edit.completed"]
    assert pixels(base64.b64decode(done["b64_json"])).shape == (SIDE, SIDE, 3)
