"""The tiny offline pipelines: tokenizer prefix lengths, layout, reproducibility, loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from diffusers import DiffusionPipeline
from transformers import Qwen2Tokenizer

from services.tinymodels import stamp
from services.tinymodels.builder import build
from services.tinymodels.tokenizer import (
    SPECIAL_TOKENS,
    pipeline_templates,
    template_prefix_length,
    train_tokenizer,
)
from services.tinymodels.variants import VARIANTS
from tests.support.tiny_models import (
    TINY_EDIT_DIR,
    TINY_EDIT_PLUS_DIR,
    TINY_IMAGE_DIR,
    ensure_tiny_models,
)

FOLDERS = {
    "QwenImagePipeline": TINY_IMAGE_DIR,
    "QwenImageEditPipeline": TINY_EDIT_DIR,
    "QwenImageEditPlusPipeline": TINY_EDIT_PLUS_DIR,
}


@pytest.fixture(scope="module", autouse=True)
def tiny_models() -> None:
    ensure_tiny_models()


@pytest.mark.parametrize("class_name", sorted(FOLDERS))
def test_the_dropped_prefix_is_exactly_the_template(class_name: str) -> None:
    """The pipelines drop `prompt_template_encode_start_idx` leading tokens (34 text-to-image,
    64 edit): with our tokenizer that must be exactly the template's system turn."""
    template, drop = pipeline_templates()[class_name]
    assert drop == (34 if class_name == "QwenImagePipeline" else 64)
    tokenizer = Qwen2Tokenizer.from_pretrained(FOLDERS[class_name] / "tokenizer")
    assert template_prefix_length(tokenizer, template) == drop
    # The first token kept is the first token of what follows the user turn.
    ids = tokenizer(template.format("hello")).input_ids
    after = template[template.index("<|im_start|>user\n") + len("<|im_start|>user\n") :]
    assert ids[drop] == tokenizer(after.format("hello")).input_ids[0]


def test_special_tokens_are_single_tokens() -> None:
    tokenizer = Qwen2Tokenizer.from_pretrained(TINY_EDIT_DIR / "processor")
    for token in SPECIAL_TOKENS:
        assert tokenizer(token).input_ids == [tokenizer.convert_tokens_to_ids(token)]
    assert tokenizer.decode(tokenizer("一只猫 a cat").input_ids) == "一只猫 a cat"


def test_tokenizer_training_is_reproducible() -> None:
    assert (
        train_tokenizer().backend_tokenizer.to_str() == train_tokenizer().backend_tokenizer.to_str()
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_build_is_reproducible_and_idempotent(tmp_path: Path) -> None:
    variant = VARIANTS[0]
    assert build(tmp_path / "a", variant) is True
    assert build(tmp_path / "a", variant) is False  # stamp current: left alone
    assert build(tmp_path / "b", variant) is True
    a, b = _digests(tmp_path / "a" / variant.folder), _digests(tmp_path / "b" / variant.folder)
    assert a == b
    assert a == _digests(TINY_IMAGE_DIR)


@pytest.mark.parametrize("class_name", sorted(FOLDERS))
def test_folders_load_through_from_pretrained(class_name: str) -> None:
    folder = FOLDERS[class_name]
    assert stamp.is_current(folder, class_name)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == class_name
    kwargs = {}
    if "processor" in index:
        # The real Qwen-Image-Edit layout: transformers' Qwen2VLProcessor in processor/.
        assert index["processor"] == ["transformers", "Qwen2VLProcessor"]
        assert (folder / "processor" / "preprocessor_config.json").is_file()
        from services.modelserver.processor import ImageOnlyQwen2VLProcessor

        kwargs["processor"] = ImageOnlyQwen2VLProcessor.from_pretrained(folder / "processor")
    pipe = DiffusionPipeline.from_pretrained(folder, **kwargs)
    assert type(pipe).__name__ == class_name
    text = pipe.text_encoder.config.text_config
    assert text.vocab_size == len(pipe.tokenizer) and text.hidden_size == 32
