"""Request checks of the model servers, and image decoding/encoding."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from services.common.errors import InvalidArgument
from services.modelserver.images import decode_image, encode_image
from services.modelserver.limits import MAX_SEED, check_sampling, check_size, guidance_arguments
from services.modelserver.settings import ModelServerSettings

SETTINGS = ModelServerSettings(default_steps=30)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "  "}, "prompt: must not be empty"),
        ({"num_inference_steps": 1}, "num_inference_steps: 1 is outside 2..100"),
        ({"num_inference_steps": 101}, "num_inference_steps: 101 is outside 2..100"),
        ({"num_inference_steps": -3}, "num_inference_steps: -3"),
        ({"num_images": 5}, "num_images: 5 is outside 1..4"),
        ({"num_images": -1}, "num_images: -1 is outside 1..4"),
        ({"true_cfg_scale": float("nan")}, "true_cfg_scale: nan"),
        ({"guidance_scale": -1.0}, "guidance_scale: -1.0 is outside 0..50"),
        ({"seed": -1}, "seed: -1 is outside"),
        ({"seed": MAX_SEED}, "seed:"),
        ({"output_format": "OutputFormat(9)"}, "output_format: OutputFormat(9) is not supported"),
        ({"partial_images": 4}, "partial_images: 4 is outside 0..3"),
        ({"output_compression": 101}, "output_compression: 101 is outside 0..100"),
        ({"output_compression": -1}, "output_compression: -1 is outside 0..100"),
    ],
)
def test_bad_fields_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_sampling(SETTINGS, **{"prompt": "a cat", **fields})


def test_defaults_are_filled_in() -> None:
    sampling = check_sampling(SETTINGS, prompt="a cat")
    assert (sampling.steps, sampling.num_images, sampling.output_format) == (30, 1, "png")
    assert sampling.negative_prompt is None and 0 <= sampling.seed < MAX_SEED
    assert guidance_arguments(sampling) == {"true_cfg_scale": 1.0}
    with_negative = check_sampling(SETTINGS, prompt="a cat", negative_prompt=" ", seed=7)
    assert with_negative.seed == 7 and guidance_arguments(with_negative) == {}
    # "" is a negative prompt too (seed 003's default): true CFG runs, unlike with None.
    empty = check_sampling(SETTINGS, prompt="a cat", negative_prompt="")
    assert empty.negative_prompt == "" and guidance_arguments(empty) == {}


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (100, 256, "width: 100 is not a multiple of 16; use 96 or 112"),
        (256, 4096, "height: 4096 is outside 64..2048"),
        (32, 256, "width: 32 is outside 64..2048"),
    ],
)
def test_sizes(width: int, height: int, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_size(SETTINGS, width, height)


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (1, 2, 3, 4)).save(buffer, "PNG")
    return buffer.getvalue()


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), random.Random(0).randbytes(64 * 64 * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_decode_checks_the_bytes() -> None:
    assert decode_image(_png((8, 4)), "images[0]", 100).mode == "RGB"
    with pytest.raises(InvalidArgument, match=r"images\[1\]: not a decodable image"):
        decode_image(b"GIF89a-not-really", "images[1]", 100)
    with pytest.raises(InvalidArgument, match=r"images\[0\]: not a decodable image \(corrupt"):
        decode_image(_noise_png()[:400], "images[0]", 10_000)
    with pytest.raises(InvalidArgument, match=r"images\[0\]: 20x10 is too large; at most 100"):
        decode_image(_png((20, 10)), "images[0]", 100)
    with pytest.raises(InvalidArgument, match="empty"):
        decode_image(b"", "images[0]", 100)


@pytest.mark.parametrize(
    ("name", "mime"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
def test_encode_formats(name: str, mime: str) -> None:
    encoded = encode_image(Image.new("RGB", (32, 16), (9, 9, 9)), name, seed=5)
    assert (encoded.mime_type, encoded.width, encoded.height, encoded.seed) == (mime, 32, 16, 5)
    assert Image.open(io.BytesIO(encoded.data)).size == (32, 16)


def test_settings_refuse_inconsistent_limits() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelServerSettings(max_size=1000)
    with pytest.raises(ValueError, match="default_steps"):
        ModelServerSettings(default_steps=1)
