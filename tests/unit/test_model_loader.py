"""Loading a pipeline folder: the class it names or the one asked for, and errors naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.modelserver.loader import PipelineLoadError, load_pipeline
from tests.support.tiny_models import TINY_EDIT_DIR, TINY_IMAGE_DIR, ensure_tiny_models


@pytest.fixture(scope="module", autouse=True)
def tiny_models() -> None:
    ensure_tiny_models()


def test_the_class_comes_from_model_index_or_the_setting() -> None:
    edit = load_pipeline(TINY_EDIT_DIR)
    assert (edit.class_name, type(edit.pipe).__name__) == ("QwenImageEditPipeline",) * 2
    assert type(edit.pipe.processor).__name__ == "ImageOnlyQwen2VLProcessor"
    assert (edit.device, str(edit.dtype)) == ("cpu", "torch.float32")
    plus = load_pipeline(TINY_EDIT_DIR, pipeline_class="QwenImageEditPlusPipeline")
    assert type(plus.pipe).__name__ == "QwenImageEditPlusPipeline"


def test_a_missing_folder_is_named() -> None:
    with pytest.raises(
        PipelineLoadError, match="cannot load pipeline from /nonexistent/x: no model_index.json"
    ):
        load_pipeline("/nonexistent/x")


def test_a_pipeline_this_server_does_not_run_is_refused() -> None:
    with pytest.raises(
        PipelineLoadError, match="it is a QwenImagePipeline, this server runs QwenImageEditPipeline"
    ):
        load_pipeline(TINY_IMAGE_DIR, allowed_classes={"QwenImageEditPipeline"})


def test_corrupt_weights_are_a_load_error_naming_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(TINY_IMAGE_DIR, folder)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(PipelineLoadError, match=f"cannot load pipeline from {folder}"):
        load_pipeline(folder)
