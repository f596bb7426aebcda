"""Settings every model server has; `qwen_image` and `qwen_edit` subclass it with their prefix.

The default weights are the tiny pipelines `make models` builds under `models/` at the project
root; their folder names are fixed here, so production settings need nothing from the builder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from services.common.settings import ServerSettings
from services.modelserver.acceleration import AccelerationSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = PROJECT_ROOT / "models"
TINY_IMAGE_DIR = MODELS_DIR / "qwen-image-tiny"
TINY_EDIT_DIR = MODELS_DIR / "qwen-image-edit-tiny"
TINY_EDIT_PLUS_DIR = MODELS_DIR / "qwen-image-edit-plus-tiny"
TINY_IMAGE_21_DIR = MODELS_DIR / "qwen-image-2.1-tiny"  # services/tinymodels/qwen_image_21.py
TINY_IMAGE_21_TURBO_DIR = MODELS_DIR / "qwen-image-2.1-turbo-tiny"


class ModelServerSettings(ServerSettings, AccelerationSettings):
    """Fields read from `<PREFIX>LOCATION`, `<PREFIX>MAX_QUEUE`, ... (prefix per server); the
    acceleration switches (`<PREFIX>CACHE`, `_CACHE_CONFIG`, `_COMPILE`, `_QUANTIZE`) come from
    `AccelerationSettings`."""

    # A diffusers pipeline folder or a hub id such as Qwen/Qwen-Image (seed 003).
    location: str = ""
    # A diffusers class name overriding model_index.json's _class_name (e.g.
    # QwenImageEditPlusPipeline for a checkpoint whose index names the plain edit pipeline).
    pipeline_class: str = ""
    # "cuda", "cuda:1", "cpu"; empty: CUDA when present, else CPU (bf16 on CUDA, fp32 on CPU).
    device: str = ""
    # Jobs waiting (not those in the running call); one more gets RESOURCE_EXHAUSTED at once.
    max_queue: int = Field(default=8, ge=0)
    # Images one pipeline call may carry when compatible waiting jobs run together; 0: 8 on
    # CUDA, 4 on CPU; 1 turns batching off (a job's own n images always share its call).
    max_batch_images: int = Field(default=0, ge=0)
    # How long the worker waits for compatible jobs to fill a call before starting it; 0: it
    # takes what waits now.
    batch_wait_ms: float = Field(default=0.0, ge=0)
    # Request limits. Sizes must be multiples of 16 (VAE factor 8 x 2x2 latent packing).
    min_size: int = Field(default=64, ge=16)
    max_size: int = Field(default=2048, ge=16)
    # One step gives NaN (black) images with Qwen-Image's scheduler settings: 2 is the minimum.
    min_steps: int = Field(default=2, ge=1)
    max_steps: int = Field(default=100, ge=1)
    max_images: int = Field(default=4, ge=1)  # seed 002: n is 1..4
    max_prompt_chars: int = Field(default=8000, ge=1)
    # Used when a request leaves the field at 0.
    default_steps: int = Field(default=50, ge=1)
    # Name put in GenerationResult.model; empty: the location.
    model_name: str = ""
    # Per-request LoRA: a folder of `.safetensors` adapters, one name per file (the file name
    # without the suffix), read again on every request; empty: no adapters.
    lora_dir: str = ""
    # Adapters kept loaded in the pipeline (least recently used evicted); the base weights stay.
    max_loaded_loras: int = Field(default=4, ge=1)
    max_loras_per_request: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _check_ranges(self) -> ModelServerSettings:
        for low, high in (("min_size", "max_size"), ("min_steps", "max_steps")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        for name in ("min_size", "max_size"):
            if getattr(self, name) % 16:
                raise ValueError(f"{name} must be a multiple of 16")
        if not self.min_steps <= self.default_steps <= self.max_steps:
            raise ValueError("default_steps must lie within min_steps..max_steps")
        if self.max_loras_per_request > self.max_loaded_loras:
            raise ValueError("max_loras_per_request must not exceed max_loaded_loras")
        if self.lora_dir and not Path(self.lora_dir).expanduser().is_dir():
            raise ValueError(
                f"lora_dir: {self.lora_dir} is not a folder (of .safetensors adapters)"
            )
        return self
