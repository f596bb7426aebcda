"""The gateway's request parsing without HTTP: sizes, both image shapes, edits, and the messages
every bad field gets."""

from __future__ import annotations

import pytest

from services.gateway.edits.protocol import EditJsonRequest, form_spec, json_spec
from services.gateway.errors import ApiError
from services.gateway.images.protocol import (
    DashScopeImageRequest,
    OpenAIImageRequest,
    dashscope_spec,
    openai_spec,
)
from services.gateway.sizes import ASPECT_RATIOS, resolve_size
from services.gateway.validation import parse


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (0, 0)),
        ({"size": "1024x1024"}, (1024, 1024)),
        ({"size": "1328*1328"}, (1328, 1328)),
        ({"size": " 64 X 32 "}, (64, 32)),
        ({"size": "auto"}, (0, 0)),
        ({"size": "1328*1328", "width": 64, "height": 96}, (64, 96)),
        ({"size": "1024x1024", "width": 512}, (512, 1024)),
        ({"aspect_ratio": "16:9"}, (1664, 928)),
        ({"aspect_ratio": "16:9", "size": "64x64"}, (1664, 928)),
        ({"aspect_ratio": "4:3", "height": 64}, (1472, 64)),
    ],
)
def test_sizes(kwargs: dict, expected: tuple[int, int]) -> None:
    assert resolve_size(**kwargs) == expected


def test_every_aspect_ratio_is_a_multiple_of_16() -> None:
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in ASPECT_RATIOS.values())


@pytest.mark.parametrize(
    ("kwargs", "param", "words"),
    [
        ({"size": "abc"}, "size", "WIDTHxHEIGHT"),
        ({"size": "10x"}, "size", "WIDTHxHEIGHT"),
        ({"width": 64}, "height", "give both"),
        ({"aspect_ratio": "7:5"}, "aspect_ratio", "16:9"),
        ({"size": "99999x64"}, "size", "between 16 and 4096"),
        ({"size": "8x64"}, "size", "between 16 and 4096"),
        ({"size": "abc", "prefix": "parameters."}, "parameters.size", "parameters.size"),
    ],
)
def test_bad_sizes(kwargs: dict, param: str, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        resolve_size(**kwargs)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert words in caught.value.message


def test_openai_shape() -> None:
    spec = openai_spec(
        parse(
            OpenAIImageRequest,
            {"prompt": "a cat", "n": "2", "size": "64x32", "seed": 5, "true_cfg_scale": 4},
        )
    )
    assert (spec.prompt, spec.n, spec.width, spec.height, spec.seed) == ("a cat", 2, 64, 32, 5)
    assert spec.response_format == "url" and spec.true_cfg_scale == 4.0


def test_dashscope_shape_as_in_seed_002() -> None:
    body = {
        "model": "aliyun/aliyun/qwen-image-plus",
        "input": {"messages": [{"role": "user", "content": [{"text": "对联"}]}]},
        "parameters": {
            "negative_prompt": "",
            "prompt_extend": True,
            "watermark": False,
            "size": "1328*1328",
            "response_format": "url",
            "num_inference_steps": 10,
            "guidance_scale": 4.5,
            "seed": 12345,
            "n": 1,
            "width": 1328,
            "height": 1328,
        },
    }
    spec = dashscope_spec(parse(DashScopeImageRequest, body))
    assert (spec.model, spec.prompt, spec.width, spec.height) == (
        "aliyun/aliyun/qwen-image-plus",
        "对联",
        1328,
        1328,
    )
    # Seed 002's guidance_scale is Qwen-Image's true CFG scale.
    assert (spec.true_cfg_scale, spec.guidance_scale) == (4.5, None)
    assert (spec.prompt_extend, spec.num_inference_steps, spec.seed) == (True, 10, 12345)


def test_dashscope_flat_prompt_and_string_content() -> None:
    flat = parse(DashScopeImageRequest, {"input": {"prompt": "a kite"}})
    assert dashscope_spec(flat).prompt == "a kite"
    text = parse(DashScopeImageRequest, {"input": {"messages": [{"role": "user", "content": "x"}]}})
    assert dashscope_spec(text).prompt == "x"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "prompt", "prompt is required"),
        ({"prompt": ["a"]}, "prompt", "prompt must be a string"),
        ({"prompt": "a", "n": 0}, "n", "n must be >= 1 (got 0)"),
        ({"prompt": "a", "n": 1.5}, "n", "n must be a whole number"),
        ({"prompt": "a", "response_format": "gif"}, "response_format", "'url' or 'b64_json'"),
        ({"prompt": "a", "width": 8}, "width", "width must be >= 16"),
        ({"prompt": "a", "watermark": "maybe"}, "watermark", "true or false"),
    ],
)
def test_bad_fields_name_the_field_and_what_is_allowed(body: dict, param: str, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        openai_spec(parse(OpenAIImageRequest, body))
    assert (caught.value.status, caught.value.param) == (400, param)
    assert words in caught.value.message


def test_edit_json_forms() -> None:
    one = json_spec(parse(EditJsonRequest, {"prompt": "p", "image": "https://x/a.png"}))
    assert [(r.param, r.text) for r in one.images] == [("image", "https://x/a.png")]
    many = json_spec(parse(EditJsonRequest, {"prompt": "p", "image": ["a", "b"], "mask": "m"}))
    assert [r.param for r in many.images] == ["image[0]", "image[1]"]
    assert many.mask is not None and many.mask.param == "mask"
    openai_json = json_spec(
        parse(EditJsonRequest, {"prompt": "p", "images": [{"image_url": "https://x/a.png"}]})
    )
    assert openai_json.images[0].param == "images[0]"


def test_edit_form_fields_are_converted() -> None:
    spec = form_spec(
        {"prompt": "hat", "num_inference_steps": "2", "seed": "9", "size": "64x64"},
        [b"\x89PNG..."],
        None,
    )
    assert (spec.num_inference_steps, spec.seed, spec.width, spec.images[0].param) == (
        2,
        9,
        64,
        "image",
    )
    with pytest.raises(ApiError) as caught:
        form_spec({"prompt": "hat"}, [], None)
    assert "image is required" in caught.value.message
