"""Settings of the Qwen-Image server, read from `QWEN_IMAGE_*` environment variables."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.modelserver.settings import TINY_IMAGE_DIR, ModelServerSettings


class QwenImageSettings(ModelServerSettings):
    model_config = SettingsConfigDict(env_prefix="QWEN_IMAGE_")

    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9151"
    # QWEN_IMAGE_LOCATION (seed 003): a pipeline folder or a hub id such as Qwen/Qwen-Image.
    location: str = str(TINY_IMAGE_DIR)
    # Used when a request leaves width or height at 0 (the OpenAI default size).
    default_width: int = Field(default=1024, ge=16)
    default_height: int = Field(default=1024, ge=16)
    # An input image (img2img, inpainting) or mask over this many pixels is refused before work.
    max_input_pixels: int = Field(default=4096 * 4096, ge=1)
    # QWEN_IMAGE_CONTROLNET_LOCATION: QwenImageControlNetModel folders or hub ids, comma-separated
    # (or a JSON list), each loaded once and shared by the ControlNet pipelines
    # (`modelserver.controlnets`); empty: none, requests with control inputs are refused.
    controlnet_location: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("controlnet_location", mode="before")
    @classmethod
    def _split_locations(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
