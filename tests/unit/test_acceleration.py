"""Acceleration switches: settings refused with the field named, refusals that stop start-up, and
the step cache on the real tiny pipeline (an image close to the uncached one, steps counted)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from prometheus_client import REGISTRY
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.modelserver.acceleration import (
    Acceleration,
    AccelerationError,
    AccelerationSettings,
)
from services.modelserver.acceleration_cache import last_stats
from services.modelserver.loader import PipelineLoadError, load_pipeline
from tests.support.tiny_models import TINY_IMAGE_DIR, ensure_tiny_models

# What the 2-block tiny transformer can cache: random weights change a lot between steps.
TINY_DBCACHE = (
    '{"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "residual_diff_threshold": 0.5, '
    '"max_warmup_steps": 4}'
)


class Settings(AccelerationSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QWEN_IMAGE_")


@pytest.fixture(scope="module", autouse=True)
def tiny_models() -> None:
    ensure_tiny_models()


def test_switches_are_read_from_the_servers_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_IMAGE_CACHE", "taylorseer")
    monkeypatch.setenv("QWEN_IMAGE_CACHE_CONFIG", '{"taylorseer_order": 2}')
    monkeypatch.setenv("QWEN_IMAGE_COMPILE", "regional")
    described = Acceleration(Settings()).describe()
    assert described == {
        "cache": "taylorseer",
        "cache_config": '{"taylorseer_order": 2}',
        "compile": "regional",
        "quantize": "none",
    }
    monkeypatch.delenv("QWEN_IMAGE_CACHE_CONFIG")
    assert Acceleration(Settings(cache="none", compile="none")).active is False


@pytest.mark.parametrize(
    ("cache", "config", "message"),
    [
        ("dbcache", '{"Fn_compute_blocks": 1, "fn_blocks": 2}', "unknown field 'fn_blocks'"),
        ("dbcache", '{"residual_diff_threshold": "high"}', "residual_diff_threshold"),
        ("dbcache", '{"Fn_compute_blocks": 1.5}', "Fn_compute_blocks: Input should be a valid int"),
        (
            "dbcache",
            '{"taylorseer_order": 2}',
            "taylorseer_order applies only with CACHE=taylorseer",
        ),
        ("dbcache", "Fn_compute_blocks=1", "QWEN_IMAGE_CACHE_CONFIG is not JSON"),
        ("dbcache", "[1, 2]", "must be a JSON object"),
        (
            "none",
            '{"Fn_compute_blocks": 1}',
            "QWEN_IMAGE_CACHE_CONFIG is set but QWEN_IMAGE_CACHE is none",
        ),
    ],
)
def test_a_bad_cache_config_stops_start_up_naming_the_field(
    cache: Any, config: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(cache=cache, cache_config=config)


def test_an_unknown_switch_value_is_refused() -> None:
    with pytest.raises(ValidationError, match="cache"):
        Settings(cache="teacache")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="quantize"):
        Settings(quantize="int4")  # type: ignore[arg-type]


def test_fp8_on_cpu_refuses_rather_than_running_unquantised() -> None:
    acceleration = Acceleration(Settings(quantize="fp8"))
    with pytest.raises(AccelerationError, match="QWEN_IMAGE_QUANTIZE=fp8 needs a CUDA GPU") as err:
        acceleration.check_device("cpu")
    assert isinstance(err.value, PipelineLoadError)  # the server exits with the message


def test_a_switch_that_cannot_apply_to_the_pipeline_stops_start_up() -> None:
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, block_out_channels=(8,), down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",), layers_per_block=1, norm_num_groups=4,
    )  # fmt: skip
    no_transformer = DDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    with pytest.raises(AccelerationError, match="DDPMPipeline has none"):
        Acceleration(Settings(cache="dbcache")).apply(no_transformer, "cpu")
    # cache-dit's default Fn_compute_blocks (8, for the 60-block model) leaves the tiny
    # transformer's 2 blocks nothing to cache.
    tiny = load_pipeline(TINY_IMAGE_DIR).pipe
    with pytest.raises(AccelerationError, match="leave none of the transformer's 2 blocks"):
        Acceleration(Settings(cache="dbcache")).apply(tiny, "cpu")


def _generate(pipe: object, negative: bool) -> np.ndarray:
    kwargs: dict[str, object] = {"true_cfg_scale": 1.0}
    if negative:
        kwargs = {"negative_prompt": "blurry", "true_cfg_scale": 4.0}
    images = pipe(  # type: ignore[operator]
        prompt="a red fox in the snow",
        width=128,
        height=128,
        num_inference_steps=16,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
        **kwargs,
    ).images
    return np.asarray(images, dtype=np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _cached_total() -> float:
    value = REGISTRY.get_sample_value(
        "imagemesh_modelserver_cached_steps_total", {"server": "qwen_image"}
    )
    return value or 0.0


def test_dbcache_gives_an_image_close_to_uncached_and_counts_cached_steps() -> None:
    plain = load_pipeline(TINY_IMAGE_DIR).pipe
    cached = load_pipeline(TINY_IMAGE_DIR).pipe
    references = {negative: _generate(plain, negative) for negative in (True, False)}
    Acceleration(Settings(cache="dbcache", cache_config=TINY_DBCACHE)).apply(cached, "cpu")
    for negative in (True, False):  # true CFG on (two passes a step) and off (one)
        before = _cached_total()
        image = _generate(cached, negative)
        stats = last_stats(cached)
        assert stats.steps == 16
        assert 0 < stats.cached_steps < 16
        assert (stats.cfg_cached_steps > 0) is negative
        assert _cached_total() - before == stats.cached_steps
        assert _psnr(image, references[negative]) > 30
    # The other pipeline of the same class is untouched by cache-dit's hooks.
    assert np.array_equal(_generate(plain, True), references[True])
    assert last_stats(plain).cached_steps == 0


async def test_a_server_started_with_dbcache_serves_and_counts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from services.qwen_image.generator import GenerateSpec, Generator
    from services.qwen_image.settings import QwenImageSettings

    monkeypatch.setenv("QWEN_IMAGE_CACHE", "dbcache")
    monkeypatch.setenv("QWEN_IMAGE_CACHE_CONFIG", TINY_DBCACHE)
    generator = Generator(QwenImageSettings(default_width=128, default_height=128))
    await generator.load()
    before = _cached_total()
    caplog.set_level("INFO", logger="imagemesh.acceleration")
    try:
        output = await generator.generate(
            GenerateSpec(
                prompt="a red fox", negative_prompt="blurry", num_inference_steps=16, seed=3
            )
        )
    finally:
        await generator.close()
    assert (output.width, output.height, len(output.images)) == (128, 128, 1)
    assert output.images[0].data.startswith(b"\x89PNG")
    cached = _cached_total() - before
    assert 0 < cached < 16
    assert f"step cache: {int(cached)} of 16 steps cached" in caplog.text


def test_a_bad_switch_in_the_environment_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.qwen_image.settings import QwenImageSettings

    monkeypatch.setenv("QWEN_IMAGE_CACHE", "dbcache")
    monkeypatch.setenv("QWEN_IMAGE_CACHE_CONFIG", '{"Fn_compute_block": 1}')
    with pytest.raises(
        ValidationError, match="QWEN_IMAGE_CACHE_CONFIG: unknown field 'Fn_compute_block'"
    ):
        QwenImageSettings()


async def test_regional_compile_is_warmed_up_before_the_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch._dynamo.utils

    from services.qwen_image.generator import GenerateSpec, Generator
    from services.qwen_image.settings import QwenImageSettings

    monkeypatch.setenv("QWEN_IMAGE_COMPILE", "regional")
    generator = Generator(QwenImageSettings(default_width=64, default_height=64))
    await generator.load()  # compiles and warms up at the default size, as before SERVING
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs > 0
    try:
        for negative in ("blurry", None):  # true CFG on and off: both compiled by the warm-up
            output = await generator.generate(
                GenerateSpec(prompt="a red fox", negative_prompt=negative, num_inference_steps=3)
            )
            assert (output.width, output.height) == (64, 64)
    finally:
        await generator.close()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # nothing compiled
