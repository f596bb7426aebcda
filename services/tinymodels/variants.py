"""The three tiny pipelines: folder name, diffusers class, whether it has a Qwen2-VL processor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    folder: str
    pipeline_class: str
    has_processor: bool


VARIANTS = (
    Variant("qwen-image-tiny", "QwenImagePipeline", has_processor=False),
    Variant("qwen-image-edit-tiny", "QwenImageEditPipeline", has_processor=True),
    Variant("qwen-image-edit-plus-tiny", "QwenImageEditPlusPipeline", has_processor=True),
)
