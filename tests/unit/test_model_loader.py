"""Loading a pipeline folder: the class it names or the one asked for, and errors naming it."""

from __future__ import annotations

import json
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


def test_the_real_edit_checkpoint_layout_loads_without_torchvision(tmp_path: Path) -> None:
    """Qwen/Qwen-Image-Edit's processor/ also holds a video processor config (which would need
    torchvision) and a chat template; the image-only processor ignores the video part."""
    folder = tmp_path / "Qwen-Image-Edit"
    shutil.copytree(TINY_EDIT_DIR, folder)
    processor = folder / "processor"
    (processor / "video_preprocessor_config.json").write_text(
        json.dumps(
            {
                "video_processor_type": "Qwen2VLVideoProcessor",
                "processor_class": "Qwen2VLProcessor",
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
            }
        )
    )
    (processor / "chat_template.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    loaded = load_pipeline(folder)
    assert loaded.class_name == "QwenImageEditPipeline"
    assert not hasattr(loaded.pipe.processor, "video_processor") or (
        loaded.pipe.processor.video_processor is None
    )
