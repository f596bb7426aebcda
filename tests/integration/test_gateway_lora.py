"""Per-request LoRA through the gateway on the session mesh, whose model servers read a LORA_DIR
of the tiny adapters and one broken file (tests/support/mesh.py).

What a client sees: `/v1/models` lists each local model's adapters; `lora` changes the picture
through the OpenAI JSON shape, multipart edits (a JSON string), DashScope `parameters` and the
task API, while the same seed without it gives the base picture again; bad values answer 4xx
naming the field, a broken adapter 503 naming it (and listed unavailable after), and a hosted
model refuses `lora` instead of ignoring it.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.mesh import Mesh
from tests.support.tiny_models import BROKEN_LORA

A, B = "tiny-a", "tiny-b"
SMALL: dict[str, Any] = {"size": "64x64", "num_inference_steps": 2, "seed": 17}


def post(mesh: Mesh, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{mesh.gateway_url}{path}", timeout=120, **kwargs)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def moved(one: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(one - other).mean())


def generated(mesh: Mesh, **fields: Any) -> np.ndarray:
    body = {"model": "qwen-image", "prompt": "a red fox", "response_format": "b64_json"}
    answer = post(mesh, "/v1/images/generations", json={**body, **SMALL, **fields})
    assert answer.status_code == 200, answer.text
    return pixels(base64.b64decode(answer.json()["data"][0]["b64_json"]))


def models(mesh: Mesh) -> dict[str, Any]:
    listed = httpx.get(f"{mesh.gateway_url}/v1/models", timeout=30).json()["data"]
    return {item["id"]: item for item in listed}


def test_v1_models_lists_each_local_models_adapters(mesh: Mesh) -> None:
    listed = models(mesh)
    for model in ("qwen-image", "qwen-image-edit"):
        names = {lora["name"]: lora for lora in listed[model]["loras"]}
        assert {A, B, BROKEN_LORA} <= set(names)
        assert names[A]["available"] is True and isinstance(names[A]["loaded"], bool)
        assert listed[model]["max_loras_per_request"] == 3
    hosted = next(item for item in listed.values() if item["backend"] == "providers")
    assert "loras" not in hosted


def test_a_lora_changes_the_picture_and_the_base_comes_back_without_it(mesh: Mesh) -> None:
    base = generated(mesh)
    with_a = generated(mesh, lora={"name": A})
    assert moved(with_a, base) > 1.0
    assert np.array_equal(generated(mesh), base)
    assert np.array_equal(generated(mesh, lora=[{"name": A, "scale": 1}]), with_a)
    assert np.array_equal(generated(mesh, lora=A), with_a)  # a bare name: scale 1
    assert moved(generated(mesh, lora=[{"name": A}, {"name": B, "scale": 0.5}]), with_a) > 0.5


def dashscope(mesh: Mesh, **parameters: Any) -> np.ndarray:
    body = {
        "model": "qwen-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "a red fox"}]}]},
        "parameters": {"size": "64*64", "num_inference_steps": 2, "seed": 17, **parameters},
    }
    answer = post(mesh, "/v1/images/generations", json={**body})
    assert answer.status_code == 200, answer.text
    link = answer.json()["output"]["choices"][0]["message"]["content"][0]["image"]
    return pixels(httpx.get(link, timeout=30).content)


def test_dashscope_parameters_take_lora(mesh: Mesh) -> None:
    base = dashscope(mesh, response_format="url")
    assert moved(dashscope(mesh, response_format="url", lora={"name": B}), base) > 1.0


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, "PNG")
    return buffer.getvalue()


def edited(mesh: Mesh, lora: Any = None) -> np.ndarray:
    fields = {"model": "qwen-image-edit", "prompt": "make it blue", "response_format": "b64_json"}
    fields.update({k: str(v) for k, v in SMALL.items()})
    if lora is not None:
        fields["lora"] = json.dumps(lora)
    answer = post(
        mesh, "/v1/images/edits", data=fields, files={"image": ("in.png", png((200, 30, 30)))}
    )
    assert answer.status_code == 200, answer.text
    return pixels(base64.b64decode(answer.json()["data"][0]["b64_json"]))


def test_multipart_edits_take_lora_as_a_json_string(mesh: Mesh) -> None:
    base = edited(mesh)
    assert moved(edited(mesh, {"name": A, "scale": 1.5}), base) > 1.0
    assert np.array_equal(edited(mesh), base)


def test_a_task_takes_lora_and_an_unknown_one_fails_the_task_naming_it(mesh: Mesh) -> None:
    parameters = {"prompt": "a red fox", "size": "64*64", "num_inference_steps": 2, "seed": 17}

    def task(**extra: Any) -> dict[str, Any]:
        answer = post(
            mesh,
            "/api/v1/tasks/",
            json={"model": "qwen-image", "parameters": {**parameters, **extra}, "is_async": False},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["results"])

    def picture(results: dict[str, Any]) -> np.ndarray:
        assert results["status"] == "completed", results
        return pixels(httpx.get(results["result"]["images"][0]["url"], timeout=30).content)

    assert moved(picture(task(lora={"name": A})), picture(task())) > 1.0
    failed = task(lora={"name": "no-such"})
    assert failed["status"] == "failed"
    assert "no adapter 'no-such'" in failed["error"]["message"]


REFUSED = {
    "unknown name": (
        {"lora": {"name": "no-such"}},
        404,
        ["no adapter 'no-such'; available: ", A, B],
    ),
    "scale above 2": ({"lora": {"name": A, "scale": 3}}, 400, ["lora[0].scale must be <= 2"]),
    "too many": (
        {"lora": [{"name": n} for n in (A, B, "x", "y")]},
        400,
        ["lora: 4 adapters given; at most 3 per request"],
    ),
    "not an adapter": ({"lora": 5}, 400, ['lora: send {"name": ..., "scale": ...}']),
    "misspelled field": ({"lora": {"name": A, "weight": 1}}, 400, ["lora[0].weight"]),
    "hosted model": (
        {"model": "gpt-image-1", "lora": {"name": A}},
        400,
        ["lora: gpt-image-1 is a hosted model and takes no LoRA adapters"],
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_lora_values_answer_4xx_naming_them(mesh: Mesh, case: str) -> None:
    fields, status, fragments = REFUSED[case]
    body = {"model": "qwen-image", "prompt": "a red fox", **SMALL, **fields}
    answer = post(mesh, "/v1/images/generations", json=body)
    assert answer.status_code == status, answer.text
    for fragment in fragments:
        assert fragment in answer.json()["message"]


def test_a_broken_adapter_is_a_503_naming_it_and_listed_unavailable(mesh: Mesh) -> None:
    answer = post(
        mesh,
        "/v1/images/generations",
        json={"model": "qwen-image", "prompt": "a red fox", **SMALL, "lora": BROKEN_LORA},
    )
    assert answer.status_code == 503, answer.text
    assert f"lora '{BROKEN_LORA}' is unavailable" in answer.json()["message"]
    [listed] = [x for x in models(mesh)["qwen-image"]["loras"] if x["name"] == BROKEN_LORA]
    assert listed["available"] is False and "does not load" in listed["reason"]
    assert generated(mesh, lora={"name": A}).shape == (64, 64, 3)  # the others still serve
