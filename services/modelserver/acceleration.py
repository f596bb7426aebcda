"""The model servers' acceleration switches: step cache, regional compile, FP8 weights.

Off by default, one setting each (`<SERVER>_CACHE`, `_CACHE_CONFIG`, `_COMPILE`, `_QUANTIZE`,
fields of `AccelerationSettings`). `Acceleration(settings)` checks them against the device before
any weights load (`check_device`: FP8 needs CUDA), then `apply(pipe)` turns them on for the loaded
pipeline and warms it up with one small generation, so no request pays for compilation. A switch
that cannot apply (no transformer, a pipeline cache-dit has no adapter for, no C++ compiler for
inductor, FP8 on CPU) raises `AccelerationError`, a `PipelineLoadError`: the server stops with the
message instead of running slower than asked. `describe()` is what `/v1/models` shows.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, model_validator

from services.modelserver.acceleration_cache import (
    CacheConfigError,
    cache_refusal,
    enable_cache,
    parse_cache_config,
)
from services.modelserver.loader import LoadedPipeline, PipelineLoadError, choose_device

log = logging.getLogger("imagemesh.acceleration")

# torch.compile keeps one graph per input shape it meets (sizes, batch, CFG pass); dynamo's
# default of 8 per block would fall back to eager after a few sizes.
RECOMPILE_LIMIT = 64


class AccelerationError(PipelineLoadError):
    """An acceleration setting cannot apply here; the message says which and why."""


class AccelerationSettings(BaseModel):
    """Fields of every model server's settings (`QWEN_IMAGE_CACHE`, `QWEN_IMAGE_EDIT_COMPILE`...)."""

    # Step caching through cache-dit 1.5.3: DBCache, or DBCache with the TaylorSeer calibrator.
    cache: Literal["none", "dbcache", "taylorseer"] = "none"
    # JSON object of cache-dit config fields (DBCacheConfig; with taylorseer also
    # taylorseer_order...), e.g. {"Fn_compute_blocks": 1, "residual_diff_threshold": 0.3}.
    cache_config: str = ""
    # torch.compile of the transformer's repeated blocks, warmed up before SERVING.
    compile: Literal["none", "regional"] = "none"
    # FP8 (torchao) weights and activations in the transformer's linear layers; CUDA only.
    quantize: Literal["none", "fp8"] = "none"

    @model_validator(mode="after")
    def _check_cache_config(self) -> AccelerationSettings:
        prefix = _env_prefix(self)
        if self.cache == "none":
            if self.cache_config.strip():
                raise ValueError(
                    f"{prefix}CACHE_CONFIG is set but {prefix}CACHE is none: set it to dbcache "
                    "or taylorseer too"
                )
            return self
        try:
            parse_cache_config(self.cache, self.cache_config, f"{prefix}CACHE_CONFIG")
        except CacheConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


def _env_prefix(settings: Any) -> str:
    return str(getattr(settings, "model_config", {}).get("env_prefix", ""))


class Acceleration:
    """The switches of one server, applied to its pipeline once, at load."""

    def __init__(self, settings: AccelerationSettings) -> None:
        self.settings = settings
        self.prefix = _env_prefix(settings)
        self.server = self.prefix.rstrip("_").lower() or "model"
        self.cache_fields = (
            parse_cache_config(settings.cache, settings.cache_config, f"{self.prefix}CACHE_CONFIG")
            if settings.cache != "none"
            else {}
        )
        self.warmup_seconds = 0.0

    @property
    def active(self) -> bool:
        s = self.settings
        return (s.cache, s.compile, s.quantize) != ("none", "none", "none")

    def describe(self) -> dict[str, str]:
        """The switches as `/v1/models` shows them (cache_config as the JSON it was given)."""
        s = self.settings
        described: dict[str, str] = {"cache": s.cache, "compile": s.compile, "quantize": s.quantize}
        if s.cache != "none":
            described["cache_config"] = json.dumps(self.cache_fields, sort_keys=True)
        return described

    def check_device(self, device: str) -> None:
        """Refuses what the device cannot do, before any weights are read."""
        if self.settings.quantize == "fp8":
            _check_fp8(device, self.prefix)
        if self.settings.compile == "regional" and device.startswith("cpu"):
            compiler = shutil.which("g++") or shutil.which("c++")
            if compiler is None:
                raise AccelerationError(
                    f"{self.prefix}COMPILE=regional: torch.compile (inductor) builds C++ kernels on "
                    "CPU and no C++ compiler (g++) is installed; install g++ or set COMPILE=none"
                )

    def apply(self, pipe: Any, device: str, width: int = 1024, height: int = 1024) -> None:
        """Turns the switches on for a loaded pipeline and warms it up (blocking).

        Order: FP8 weights; compile of the blocks and one generation at `width` x `height` with
        true CFG (both of a step's passes), so that size's shapes are compiled before the first
        request; then the cache hooks, which call the same (compiled) blocks, so the warm-up is
        not counted as a cached job.
        """
        if not self.active:
            return
        self.check_device(device)
        transformer = getattr(pipe, "transformer", None)
        if transformer is None:
            raise AccelerationError(
                f"{self.prefix}CACHE/COMPILE/QUANTIZE act on a pipeline's transformer and "
                f"{type(pipe).__name__} has none"
            )
        if self.settings.quantize == "fp8":
            _quantize_fp8(transformer)
        if self.settings.cache != "none":
            reason = cache_refusal(pipe, self.cache_fields)
            if reason is not None:
                raise AccelerationError(f"{self.prefix}CACHE={self.settings.cache}: {reason}")
        if self.settings.compile == "regional":
            if not getattr(transformer, "_repeated_blocks", None):
                raise AccelerationError(
                    f"{self.prefix}COMPILE=regional: {type(transformer).__name__} names no "
                    "repeated blocks (_repeated_blocks) to compile"
                )
            import torch

            torch._dynamo.config.recompile_limit = max(
                RECOMPILE_LIMIT, torch._dynamo.config.recompile_limit
            )
            transformer.compile_repeated_blocks(fullgraph=False)
            started = time.perf_counter()
            try:
                warm_up(pipe, device, width, height)
            except Exception as exc:
                raise AccelerationError(
                    f"{self.prefix}COMPILE=regional: torch.compile failed on {device}: "
                    f"{type(exc).__name__}: {str(exc)[:500]}"
                ) from exc
            self.warmup_seconds = time.perf_counter() - started
        if self.settings.cache != "none":
            enable_cache(pipe, self.settings.cache, self.cache_fields, self.server)
        log.info("acceleration on: %s (warm-up %.1f s)", self.describe(), self.warmup_seconds)


def load_accelerated(settings: Any, load: Callable[[], LoadedPipeline]) -> LoadedPipeline:
    """`load()` with the settings' switches on: refused before the weights are read when the
    device cannot do them, applied and warmed up (at the server's default size) after."""
    acceleration = Acceleration(settings)
    acceleration.check_device(choose_device(settings.device or None)[0])
    loaded = load()
    width = getattr(settings, "default_width", 1024)
    height = getattr(settings, "default_height", 1024)
    acceleration.apply(loaded.pipe, loaded.device, width, height)
    return loaded


def warm_up(pipe: Any, device: str, width: int, height: int, steps: int = 2) -> None:
    """One small generation through `pipe` with true CFG (an edit pipeline gets a blank image)."""
    import torch
    from PIL import Image

    kwargs: dict[str, Any] = {
        "prompt": "warm-up",
        "negative_prompt": " ",
        "true_cfg_scale": 4.0,
        "width": width,
        "height": height,
        "num_inference_steps": steps,
        "generator": torch.Generator(device).manual_seed(0),
        "output_type": "latent",
    }
    if "image" in inspect.signature(pipe.__call__).parameters:
        kwargs["image"] = Image.new("RGB", (width, height), (128, 128, 128))
    pipe(**kwargs)


def _check_fp8(device: str, prefix: str) -> None:
    if not device.startswith("cuda"):
        raise AccelerationError(
            f"{prefix}QUANTIZE=fp8 needs a CUDA GPU (torchao's FP8 kernels); this server runs on "
            f"{device}: set {prefix}QUANTIZE=none (refusing rather than running unquantised)"
        )
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        raise AccelerationError(
            f"{prefix}QUANTIZE=fp8 needs compute capability 8.9 or newer (Ada, Hopper); "
            f"{torch.cuda.get_device_name(device)} has {major}.{minor}"
        )
    try:
        import torchao  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        raise AccelerationError(
            f"{prefix}QUANTIZE=fp8 needs torchao (pip install torchao==0.18.0): {exc}"
        ) from exc


def _quantize_fp8(transformer: Any) -> None:
    """Float8 weights and per-row dynamic float8 activations in every linear layer."""
    from torchao.quantization import (  # type: ignore[import-untyped]
        Float8DynamicActivationFloat8WeightConfig,
        PerRow,
        quantize_,
    )

    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
