"""DashScope-shaped requests (seed 002) through the gateway: the DashScope-shaped answer, links
that download as PNGs of the asked size, and width/height winning over size."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image

from tests.support.mesh import Mesh


def dashscope(prompt: str, **parameters: object) -> dict[str, object]:
    return {
        "model": "aliyun/aliyun/qwen-image-plus",
        "input": {"messages": [{"role": "user", "content": [{"text": prompt}]}]},
        "parameters": {
            "negative_prompt": "",
            "prompt_extend": False,
            "watermark": False,
            "num_inference_steps": 2,
            **parameters,
        },
    }


def test_url_answer_downloads_as_a_png_of_the_asked_size(mesh: Mesh) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/generations",
        json=dashscope(
            "一副典雅庄重的对联悬挂于厅堂之中",
            size="128*64",
            response_format="url",
            guidance_scale=4.5,
            seed=12345,
        ),
        timeout=120,
    )
    body = answer.json()
    assert answer.status_code == 200, body
    assert (body["code"], body["message"]) == (0, "success")
    assert body["request_id"] == answer.headers["x-request-id"]
    [choice] = body["output"]["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    link = choice["message"]["content"][0]["image"]
    assert link.startswith(mesh.link_prefix)
    assert body["output"]["task_metric"] == {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0}
    assert body["usage"] == {"width": 128, "height": 64, "image_count": 1}
    image = Image.open(io.BytesIO(httpx.get(link, timeout=30).raise_for_status().content))
    assert (image.format, image.size) == ("PNG", (128, 64))


def test_b64_json_and_width_height_win_over_size(mesh: Mesh) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/generations",
        json=dashscope(
            "a quiet harbour",
            size="1328*1328",
            width=64,
            height=96,
            n=2,
            response_format="b64_json",
        ),
        timeout=120,
    )
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["usage"] == {"width": 64, "height": 96, "image_count": 2}
    for choice in body["output"]["choices"]:
        data = base64.b64decode(choice["message"]["content"][0]["b64_json"])
        assert Image.open(io.BytesIO(data)).size == (64, 96)


def test_prompt_extend_without_a_rewrite_model_still_generates(mesh: Mesh) -> None:
    """No DashScope key in the test mesh: the prompt is used as given, the generation succeeds."""
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/generations",
        json=dashscope("a red kite", size="64*64", response_format="b64_json", prompt_extend=True),
        timeout=120,
    )
    assert answer.status_code == 200, answer.json()
