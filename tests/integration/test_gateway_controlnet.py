"""ControlNet through the gateway on the session mesh, whose qwen_image server loads the tiny
ControlNets (tests/support/mesh.py): two control ones and an inpainting one.

What a client sees: `/v1/models` lists qwen-image's ControlNets; `control_image` changes the
picture for the same seed through the OpenAI JSON shape (URL-less: a data URL and bare base64 give
the same bytes), a named ControlNet, several pictures at once, DashScope `parameters`, a masked
edit (JSON and multipart), and a stream with previews; bad values answer 400 naming the field, and
models without ControlNets refuse the fields naming the model.
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

from tests.support.controlnets import CONTROL, DEPTH, INPAINTING, disc, stripes
from tests.support.inpainting import left_half_grey_mask, png, sample_image
from tests.support.mesh import Mesh

SMALL: dict[str, Any] = {"size": "64x64", "num_inference_steps": 2, "seed": 17}
STRIPES = "data:image/png;base64," + base64.b64encode(stripes()).decode()
DISC = base64.b64encode(disc()).decode()  # bare base64


def post(mesh: Mesh, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{mesh.gateway_url}{path}", timeout=120, **kwargs)


def image_bytes(answer: httpx.Response) -> bytes:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if "data" in body:
        return base64.b64decode(body["data"][0]["b64_json"])
    return base64.b64decode(body["output"]["choices"][0]["message"]["content"][0]["b64_json"])


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def moved(one: bytes, other: bytes) -> float:
    return float(np.abs(pixels(one) - pixels(other)).mean())


def generated(mesh: Mesh, **fields: Any) -> bytes:
    body = {"model": "qwen-image", "prompt": "a red fox", "response_format": "b64_json"}
    return image_bytes(post(mesh, "/v1/images/generations", json={**body, **SMALL, **fields}))


def refused(answer: httpx.Response, says: str, param: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert says in error["message"]
    assert error["param"] == param


def test_v1_models_lists_qwen_images_controlnets(mesh: Mesh) -> None:
    listed = {
        item["id"]: item
        for item in httpx.get(f"{mesh.gateway_url}/v1/models", timeout=30).json()["data"]
    }
    assert listed["qwen-image"]["controlnets"] == [
        {"name": CONTROL, "kind": "control"},
        {"name": DEPTH, "kind": "control"},
        {"name": INPAINTING, "kind": "inpainting"},
    ]
    assert listed["qwen-image-edit"]["controlnets"] == []
    hosted = next(item for item in listed.values() if item["backend"] == "providers")
    assert "controlnets" not in hosted


def test_a_control_image_changes_the_picture_for_the_same_seed(mesh: Mesh) -> None:
    base = generated(mesh)
    controlled = generated(mesh, control_image=STRIPES)
    assert controlled != base and moved(controlled, base) > 1.0
    assert generated(mesh) == base
    # The same picture as bare base64, as an object, and naming the first ControlNet: same bytes.
    bare = base64.b64encode(stripes()).decode()
    assert generated(mesh, control_image=bare) == controlled
    assert generated(mesh, control_image={"image": STRIPES, "controlnet": CONTROL}) == controlled
    assert (
        generated(mesh, control_image=[{"image": STRIPES, "control_type": CONTROL}]) == controlled
    )
    assert moved(generated(mesh, control_image=DISC), controlled) > 0.5
    assert (
        moved(generated(mesh, control_image={"image": STRIPES, "controlnet": DEPTH}), controlled)
        > 1.0
    )
    tuned = generated(
        mesh,
        control_image=STRIPES,
        controlnet_conditioning_scale=0.5,
        control_guidance_start=0.0,
        control_guidance_end=0.5,
    )
    assert tuned != controlled


def test_several_control_images_go_through_one_controlnet(mesh: Mesh) -> None:
    one = generated(mesh, control_image=[STRIPES])
    both = generated(mesh, control_image=[STRIPES, DISC], controlnet_conditioning_scale=[1.0, 0.7])
    assert moved(both, one) > 1.0


def test_dashscope_parameters_take_the_control_fields(mesh: Mesh) -> None:
    def dashscope(**parameters: Any) -> bytes:
        body = {
            "model": "qwen-image",
            "input": {"messages": [{"role": "user", "content": [{"text": "a red fox"}]}]},
            "parameters": {
                "size": "64*64",
                "num_inference_steps": 2,
                "seed": 17,
                "response_format": "b64_json",
                **parameters,
            },
        }
        return image_bytes(
            post(mesh, "/api/v1/services/aigc/multimodal-generation/generation", json=body)
        )

    assert moved(dashscope(control_image=STRIPES), dashscope()) > 1.0


def edit_body(**fields: Any) -> dict[str, Any]:
    image = "data:image/png;base64," + base64.b64encode(png(sample_image(96, 64))).decode()
    mask = "data:image/png;base64," + base64.b64encode(png(left_half_grey_mask(96, 64))).decode()
    return {
        "model": "qwen-image",
        "prompt": "a boat",
        "image": image,
        "mask": mask,
        "num_inference_steps": 2,
        "seed": 3,
        "response_format": "b64_json",
        **fields,
    }


def test_a_masked_edit_with_the_inpainting_controlnet_json_and_multipart(mesh: Mesh) -> None:
    plain = image_bytes(post(mesh, "/v1/images/edits", json=edit_body()))
    controlled = image_bytes(
        post(mesh, "/v1/images/edits", json=edit_body(control_image={"controlnet": INPAINTING}))
    )
    assert Image.open(io.BytesIO(controlled)).size == (96, 64)
    assert moved(controlled, plain) > 1.0
    form = {
        "model": "qwen-image",
        "prompt": "a boat",
        "num_inference_steps": "2",
        "seed": "3",
        "response_format": "b64_json",
        "control_image": json.dumps({"controlnet": INPAINTING}),
    }
    files = [
        ("image", ("image.png", png(sample_image(96, 64)), "image/png")),
        ("mask", ("mask.png", png(left_half_grey_mask(96, 64)), "image/png")),
    ]
    assert image_bytes(post(mesh, "/v1/images/edits", data=form, files=files)) == controlled


def test_a_stream_with_a_control_image_sends_previews(mesh: Mesh) -> None:
    body = {
        "model": "qwen-image",
        "prompt": "a red fox",
        **SMALL,
        "stream": True,
        "partial_images": 1,
        "control_image": STRIPES,
    }
    with httpx.stream(
        "POST", f"{mesh.gateway_url}/v1/images/generations", json=body, timeout=120
    ) as answer:
        assert answer.status_code == 200
        text = answer.read().decode()
    assert "image_generation.partial_image" in text
    assert "image_generation.completed" in text


GEN_REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown controlnet": (
        {"control_image": {"image": STRIPES, "controlnet": "nope"}},
        f"unknown ControlNet 'nope'; qwen-image-tiny has {CONTROL} (control), {DEPTH} (control), "
        f"{INPAINTING} (inpainting)",
        "controls[0].controlnet",
    ),
    "start after end": (
        {"control_image": STRIPES, "control_guidance_start": 0.7, "control_guidance_end": 0.2},
        "control_guidance_start (0.7) must be below control_guidance_end (0.2)",
        "control_guidance_start",
    ),
    "end above one": (
        {"control_image": STRIPES, "control_guidance_end": 1.5},
        "control_guidance_end must be <= 1",
        "control_guidance_end",
    ),
    "negative scale": (
        {"control_image": STRIPES, "controlnet_conditioning_scale": -1},
        "controlnet_conditioning_scale",
        "controlnet_conditioning_scale",
    ),
    "scales for other pictures": (
        {"control_image": [STRIPES, DISC], "controlnet_conditioning_scale": [1.0]},
        "controlnet_conditioning_scale has 1 values for 2 control_image pictures",
        "controlnet_conditioning_scale",
    ),
    "scale without a picture": (
        {"controlnet_conditioning_scale": 0.5},
        "controlnet_conditioning_scale applies to control_image; send control_image too",
        "controlnet_conditioning_scale",
    ),
    "not an image": (
        {"control_image": "!!!"},
        "control_image: base64 image bytes is not valid base64",
        "control_image",
    ),
}


@pytest.mark.parametrize("case", sorted(GEN_REFUSALS))
def test_bad_control_values_answer_400_naming_the_field(mesh: Mesh, case: str) -> None:
    fields, says, param = GEN_REFUSALS[case]
    body = {"model": "qwen-image", "prompt": "a red fox", **SMALL, **fields}
    answer = post(mesh, "/v1/images/generations", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]["message"], answer.text


def test_models_without_controlnets_refuse_the_fields_naming_the_model(mesh: Mesh) -> None:
    image = "data:image/png;base64," + base64.b64encode(png(sample_image(64, 64))).decode()
    edit = {"model": "qwen-image-edit", "prompt": "x", "image": image, "control_image": STRIPES}
    refused(
        post(mesh, "/v1/images/edits", json=edit),
        "control_image: qwen-image-edit takes no ControlNet inputs (diffusers 0.42 has no "
        "ControlNet edit pipeline)",
        "control_image",
    )
    hosted = {"model": "gpt-image-1", "prompt": "x", "control_image": STRIPES}
    refused(
        post(mesh, "/v1/images/generations", json=hosted),
        "control_image: gpt-image-1 takes no ControlNet inputs (gpt-image-1 is a hosted model)",
        "control_image",
    )
    img2img = {**edit_body(control_image=STRIPES)}
    del img2img["mask"]
    answer = post(mesh, "/v1/images/edits", json=img2img)
    assert answer.status_code == 400
    assert "diffusers 0.42 has no ControlNet img2img pipeline" in answer.json()["error"]["message"]
