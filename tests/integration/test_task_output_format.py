"""A task's output options, over the real mesh (gateway, tasks service, Qwen-Image server,
storage): the kept image is encoded as asked, and its link and content type say so."""

from __future__ import annotations

import io
from urllib.parse import urlparse

import httpx
from PIL import Image

from tests.support.mesh import Mesh

PARAMETERS = {"prompt": "a lantern", "size": "64*64", "num_inference_steps": 2, "seed": 3}


def test_a_task_keeps_its_image_in_the_format_asked(mesh: Mesh) -> None:
    answer = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={
            "model": "qwen-image",
            "parameters": {**PARAMETERS, "output_format": "webp", "output_compression": 40},
            "is_async": False,
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results["status"] == "completed", results
    link = results["result"]["images"][0]["url"]
    assert urlparse(link).path.endswith(".webp"), link
    stored = httpx.get(link, timeout=30)
    assert stored.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(stored.content)).format == "WEBP"


def test_a_task_with_a_bad_output_option_is_refused_at_create(mesh: Mesh) -> None:
    for parameters, message in (
        ({"output_format": "gif"}, "parameters.output_format must be 'png', 'jpeg' or 'webp'"),
        ({"background": "transparent"}, "parameters.background 'transparent' cannot apply"),
    ):
        answer = httpx.post(
            f"{mesh.gateway_url}/api/v1/tasks/",
            json={"model": "qwen-image", "parameters": {**PARAMETERS, **parameters}},
            timeout=30,
        )
        assert answer.status_code == 400 and message in answer.text, answer.text
