"""The tiny Qwen-Image 2.1 pipeline and the 2.1 server's own arguments, on the real classes: the
folder loads through `DiffusionPipeline.from_pretrained` (as `Qwen/Qwen-Image-2.1` would) and
generates; a checkpoint's `sample_sigmas` decide the steps unless a request asks another count."""

from __future__ import annotations

import pytest
import torch
from diffusers import DiffusionPipeline

from services.common.errors import InvalidArgument
from services.modelserver.loader import PipelineLoadError, load_pipeline
from services.modelserver.processor import ImageOnlyQwen3VLProcessor
from services.modelserver.settings import MODELS_DIR, TINY_IMAGE_21_DIR, ModelServerSettings
from services.qwen_image import family21
from services.qwen_image.settings import QwenImageSettings
from services.tinymodels import qwen_image_21


@pytest.fixture(scope="module")
def loaded() -> family21.Image21Pipeline:
    qwen_image_21.build(MODELS_DIR)
    return family21.Image21Pipeline(
        load_pipeline(TINY_IMAGE_21_DIR, device="cpu"),
        ModelServerSettings(location=str(TINY_IMAGE_21_DIR)),
    )


def test_the_tiny_folder_loads_with_from_pretrained_and_generates() -> None:
    qwen_image_21.build(MODELS_DIR)
    processor = ImageOnlyQwen3VLProcessor.from_pretrained(str(TINY_IMAGE_21_DIR / "processor"))
    pipe = DiffusionPipeline.from_pretrained(str(TINY_IMAGE_21_DIR), processor=processor)
    assert type(pipe).__name__ == "QwenImage21Pipeline"
    image = pipe(
        "a lighthouse",
        width=64,
        height=96,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 96)


def test_sample_sigmas_decide_the_steps_unless_another_count_is_asked(
    loaded: family21.Image21Pipeline,
) -> None:
    assert loaded.sigmas(2) is None  # the tiny checkpoint sets none: the steps decide
    loaded.loaded.pipe.register_to_config(sample_sigmas=[1.0, 0.8, 0.5, 0.2])
    try:
        assert loaded.sigmas(4) is None
        assert loaded.sigmas(2) == pytest.approx([1.0, 0.5])
        steps: list[int] = []
        loaded.loaded.pipe(
            "a lighthouse",
            width=32,
            height=32,
            num_inference_steps=2,  # ignored by the pipeline: its sigmas have 4 entries
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=lambda pipe, i, t, kw: steps.append(i) or kw,
        )
        assert steps == [0, 1, 2, 3]
    finally:
        loaded.loaded.pipe.register_to_config(sample_sigmas=None)


def test_sizes_off_the_32_grid_are_refused_naming_the_model() -> None:
    family21.check_size_21(64, 96)
    with pytest.raises(InvalidArgument, match="width: 80 is not a multiple of 32.*Qwen-Image 2.1"):
        family21.check_size_21(80, 64)
    assert family21.size_from_image(100, 20) == (96, 32)


def test_a_21_server_given_controlnets_refuses_to_start_naming_the_setting() -> None:
    """diffusers' Qwen-Image ControlNets take the 1.x transformer: the setting is not ignored."""
    qwen_image_21.build(MODELS_DIR)
    settings = QwenImageSettings(
        location=str(TINY_IMAGE_21_DIR),
        controlnet_location=[str(MODELS_DIR / "qwen-image-controlnet-tiny")],
    )
    with pytest.raises(PipelineLoadError, match="QWEN_IMAGE_CONTROLNET_LOCATION.*1.x only"):
        family21.load_family(settings)
