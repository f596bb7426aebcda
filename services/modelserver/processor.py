"""The Qwen2-VL and Qwen3-VL processors without their video half, for the edit pipelines
and Qwen-Image 2.1.

transformers 5's `Qwen2VLProcessor` always builds a video processor, and every video processor
needs torchvision, which does not install beside the CPU torch wheel here (see
`shared/notes/models.md`). The edit pipelines only ever pass images, so this subclass declares just
`image_processor` and `tokenizer`: `ProcessorMixin` derives the parts it loads from the `__init__`
signature, so `from_pretrained` never touches `video_preprocessor_config.json`. It loads the
`processor/` folder of the real `Qwen/Qwen-Image-Edit` checkpoints as well as the tiny ones.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLProcessor, Qwen3VLProcessor


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` with an image processor and a tokenizer, and no video processor."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """`Qwen3VLProcessor` (Qwen-Image 2.1's text encoder) the same way: no video processor."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


# The class named in a checkpoint's `model_index.json` -> the image-only class that loads it.
IMAGE_ONLY_PROCESSORS: dict[str, type[Any]] = {
    "Qwen2VLProcessor": ImageOnlyQwen2VLProcessor,
    "Qwen3VLProcessor": ImageOnlyQwen3VLProcessor,
}
