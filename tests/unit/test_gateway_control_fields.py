"""The gateway's ControlNet fields (`services/gateway/control_fields.py`): the shapes
`control_image` takes, the scale, the guidance window, and which models take them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from imagemesh.v1 import qwen_image_pb2

from services.gateway.apierror import ApiError
from services.gateway.catalog import Catalog
from services.gateway.control_fields import (
    ControlSpec,
    check_controls,
    control_spec,
    refuse_in_task,
    set_controls,
)
from services.gateway.edits.protocol import EditFormFields
from services.gateway.images.protocol import DashScopeImageRequest, OpenAIImageRequest
from services.gateway.settings import GatewaySettings
from services.gateway.validation import parse

CATALOG = Catalog.load(GatewaySettings().catalog_path)
PICTURE = "https://example.com/edges.png"


def spec(**fields: Any) -> ControlSpec:
    return control_spec(parse(OpenAIImageRequest, {"prompt": "a cat", **fields}))


def refusal(**fields: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        spec(**fields)
    assert caught.value.status == 400
    return caught.value


def test_without_control_image_there_is_no_control() -> None:
    assert not spec().given()
    assert not spec(control_image="").given()  # an empty form field: not given
    assert not spec(control_image=None).given()


@pytest.mark.parametrize(
    "given",
    [
        PICTURE,
        [PICTURE],
        {"image": PICTURE},
        [{"image": PICTURE, "controlnet": "depth"}],
        [{"image": PICTURE, "control_type": "depth"}],
    ],
)
def test_control_image_takes_a_picture_an_object_or_a_list(given: Any) -> None:
    made = spec(control_image=given)
    assert [item.image for item in made.images] == [PICTURE]
    named = isinstance(given, list) and isinstance(given[0], dict)
    assert made.images[0].controlnet == ("depth" if named else None)


def test_one_scale_applies_to_every_picture_and_a_list_gives_one_each() -> None:
    assert spec(control_image=[PICTURE, PICTURE], controlnet_conditioning_scale=0.5).scales == [
        0.5,
        0.5,
    ]
    assert spec(control_image=[PICTURE, PICTURE], controlnet_conditioning_scale=[1, 0]).scales == [
        1.0,
        0.0,
    ]
    assert spec(control_image=PICTURE).scales is None  # the model server's default


@pytest.mark.parametrize(
    ("fields", "says", "param"),
    [
        (
            {"control_image": PICTURE, "control_guidance_start": 0.5, "control_guidance_end": 0.5},
            "control_guidance_start (0.5) must be below control_guidance_end (0.5)",
            "control_guidance_start",
        ),
        (
            {"control_image": PICTURE, "control_guidance_start": 1},
            "control_guidance_start (1) must be below control_guidance_end (1)",
            "control_guidance_start",
        ),
        (
            {"control_image": PICTURE, "control_guidance_start": -0.1},
            "control_guidance_start must be >= 0",
            "control_guidance_start",
        ),
        (
            {"control_image": PICTURE, "control_guidance_end": 2},
            "control_guidance_end must be <= 1",
            "control_guidance_end",
        ),
        (
            {"control_image": PICTURE, "controlnet_conditioning_scale": -1},
            "controlnet_conditioning_scale must be within 0..10 (got -1)",
            "controlnet_conditioning_scale",
        ),
        (
            {"control_image": [PICTURE] * 2, "controlnet_conditioning_scale": [1, 1, 1]},
            "controlnet_conditioning_scale has 3 values for 2 control_image pictures",
            "controlnet_conditioning_scale",
        ),
        (
            {"control_guidance_end": 0.5},
            "control_guidance_end applies to control_image; send control_image too",
            "control_guidance_end",
        ),
        ({"control_image": [PICTURE] * 5}, "control_image", "control_image"),
        ({"control_image": 5}, 'send a picture, {"image": ..., "controlnet": ...}', None),
        ({"control_image": {"picture": PICTURE}}, "picture", None),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    fields: dict[str, Any], says: str, param: str | None
) -> None:
    error = refusal(**fields)
    assert says in error.message
    assert "control" in error.message
    if param is not None:
        assert error.param == param


def test_dashscope_parameters_and_multipart_text_take_the_same_fields() -> None:
    dashscope = parse(
        DashScopeImageRequest,
        {
            "input": {"prompt": "a cat"},
            "parameters": {"control_image": PICTURE, "control_guidance_end": 0.8},
        },
    )
    made = control_spec(dashscope.parameters, "parameters.")
    assert [item.image for item in made.images] == [PICTURE] and made.end == 0.8
    form = parse(
        EditFormFields,
        {
            "prompt": "a cat",
            "control_image": json.dumps({"controlnet": "qwen-image-controlnet-inpainting-tiny"}),
            "controlnet_conditioning_scale": "0.5",
        },
    )
    made = control_spec(form)
    assert made.images[0].image is None and made.scales == [0.5]
    with pytest.raises(ApiError) as caught:
        control_spec(
            parse(
                DashScopeImageRequest,
                {"input": {"prompt": "a"}, "parameters": {"control_guidance_end": 0.5}},
            ).parameters,
            "parameters.",
        )
    assert caught.value.param == "parameters.control_guidance_end"


def test_only_qwen_images_server_takes_control_inputs() -> None:
    given = spec(control_image=PICTURE)
    check_controls(given, CATALOG.resolve("qwen-image", "image"))
    with pytest.raises(ApiError) as caught:
        check_controls(given, CATALOG.resolve("qwen-image-edit", "edit"))
    assert caught.value.param == "control_image"
    assert "qwen-image-edit takes no ControlNet inputs (diffusers 0.42 has no ControlNet edit" in (
        caught.value.message
    )
    with pytest.raises(ApiError) as caught:
        check_controls(given, CATALOG.resolve("gpt-image-1", "image"), "parameters.")
    assert caught.value.param == "parameters.control_image"
    check_controls(spec(), CATALOG.resolve("gpt-image-1", "image"))  # nothing asked: nothing said


def test_the_fetched_inputs_and_the_window_go_on_the_request() -> None:
    made = spec(control_image=PICTURE, control_guidance_start=0.1)
    request = qwen_image_pb2.GenerateRequest(prompt="a cat")
    set_controls(request, made)
    assert request.control_guidance_start == pytest.approx(0.1)
    assert not request.HasField("control_guidance_end")


def test_tasks_refuse_the_control_fields_naming_them() -> None:
    refuse_in_task({"prompt": "a cat"}, "parameters.")
    with pytest.raises(ApiError) as caught:
        refuse_in_task({"prompt": "a cat", "control_guidance_end": 0.5}, "parameters.")
    assert caught.value.param == "parameters.control_guidance_end"
    assert "tasks do not take ControlNet inputs yet" in caught.value.message
