"""GPU: full-size Qwen-Image (random weights, bf16, built on the device), plain diffusers vs our
model-server core, then the acceleration switches. Run on a GPU machine only; `--small` (or
BENCH_GPU_SMALL=1) shrinks everything for a CPU trial.

No weights can be downloaded there, so the published architecture is built with random weights
straight on the device: the Qwen-Image transformer (60 blocks, 24 heads of 128, joint attention
3584), the Qwen2.5-VL-7B text encoder (28 layers, hidden 3584, its 32-block vision tower) and the
Qwen-Image VAE (base 96). Speed does not depend on the weights' values, with one exception: how
many steps DBCache skips depends on how much the blocks' output changes between steps, and random
weights change it far more than trained ones. The cache rows therefore use a fixed compute/cache
schedule (cache-dit's `steps_computation_mask`, "medium" policy, static cache), standing in for
what trained weights give.

Request: 1024x1024, 50 steps, true CFG 4 with a negative prompt, one image, fixed seed. Rows, one
pipeline object throughout (one copy of the weights): plain `pipe(...)`; our core (the qwen_image
`Generator`, job queue, batching and PNG encoding included, in-process, no gRPC) driving the same
pipeline, target <= 1.02x of plain; `COMPILE=regional` (warm-up time printed); compile + cache;
cache alone; then FP8 (torchao) + compile + cache, if time is left. Target for the best
combination: <= 0.5x of plain. Published for comparison: 18.5 s plain on one H100; 10.5-10.8 s
with Cache-DiT or TeaCache (vLLM-Omni).

Budget: BENCH_GPU_BUDGET seconds (default 540, to fit a 10-minute device call); a row that would
not fit in what is left is skipped; each row is printed as it is measured.

The device machine has torch, transformers, grpcio and peft but not diffusers or cache-dit; carry
their wheels (the script says which are missing, and how):

    pip download --no-deps -d wheels diffusers==0.42.1 cache-dit==1.5.3 torchao==0.18.0
    # on the device: pip install --no-deps wheels/*.whl && python -m bench.gpu

    python -m bench.gpu --small      (CPU trial: tiny sizes, 256x256, 8 steps)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "warning")

NEEDED = {
    "diffusers": "diffusers==0.42.1",
    "cache_dit": "cache-dit==1.5.3",
    "pydantic_settings": "pydantic-settings==2.16.3",
    "prometheus_client": "prometheus-client==0.26.0",
}
PROMPT = "a lighthouse on a cliff at dusk, oil painting, dramatic sky"
NEGATIVE = "blurry, low quality, watermark"
SEED = 1234


@dataclass(frozen=True)
class Sizes:
    size: int
    steps: int
    blocks: int
    heads: int
    head_dim: int
    rope: tuple[int, int, int]
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope: tuple[int, int, int]
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    vision_full_attention: tuple[int, ...]
    vae_base: int
    vae_res_blocks: int


# Published: Qwen/Qwen-Image transformer, Qwen2.5-VL-7B-Instruct, the Qwen-Image VAE.
FULL = Sizes(
    size=1024, steps=50, blocks=60, heads=24, head_dim=128, rope=(16, 56, 56),
    text_hidden=3584, text_layers=28, text_heads=28, text_kv_heads=4, text_intermediate=18944,
    mrope=(16, 24, 24), vision_depth=32, vision_hidden=1280, vision_heads=16,
    vision_intermediate=3420, vision_full_attention=(7, 15, 23, 31), vae_base=96, vae_res_blocks=2,
)  # fmt: skip
SMALL = Sizes(
    size=256, steps=8, blocks=8, heads=2, head_dim=32, rope=(8, 12, 12),
    text_hidden=32, text_layers=2, text_heads=2, text_kv_heads=1, text_intermediate=64,
    mrope=(2, 3, 3), vision_depth=2, vision_hidden=32, vision_heads=2,
    vision_intermediate=64, vision_full_attention=(1,), vae_base=8, vae_res_blocks=1,
)  # fmt: skip


# Qwen/Qwen-Image scheduler/scheduler_config.json (inline: services.tinymodels.components also
# imports transformers' Qwen2-VL image processor, which the device's transformers may lack).
SCHEDULER = {
    "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": True, "base_shift": 0.5,
    "max_shift": 0.9, "base_image_seq_len": 256, "max_image_seq_len": 8192,
    "shift_terminal": 0.02, "time_shift_type": "exponential",
}  # fmt: skip


def missing_packages() -> list[str]:
    return [pin for module, pin in NEEDED.items() if importlib.util.find_spec(module) is None]


def build_pipeline(sizes: Sizes, device: str, dtype: Any) -> Any:
    """QwenImagePipeline of random weights, each component built on `device` in `dtype`."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from services.tinymodels.tokenizer import ENDOFTEXT, special_token_ids, train_tokenizer

    tokenizer = train_tokenizer()
    ids = special_token_ids(tokenizer)
    text_config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 152064,
            "hidden_size": sizes.text_hidden,
            "intermediate_size": sizes.text_intermediate,
            "num_hidden_layers": sizes.text_layers,
            "num_attention_heads": sizes.text_heads,
            "num_key_value_heads": sizes.text_kv_heads,
            "rope_scaling": {"mrope_section": list(sizes.mrope), "rope_type": "default"},
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 128000,
            "bos_token_id": ids[ENDOFTEXT],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids[ENDOFTEXT],
        },
        vision_config={
            "depth": sizes.vision_depth,
            "hidden_size": sizes.vision_hidden,
            "intermediate_size": sizes.vision_intermediate,
            "num_heads": sizes.vision_heads,
            "out_hidden_size": sizes.text_hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": list(sizes.vision_full_attention),
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are made in dtype: no fp32 copy of 28B weights
    try:
        with torch.device(device):
            torch.manual_seed(SEED)
            text_encoder = Qwen2_5_VLForConditionalGeneration(text_config).eval()
            transformer = QwenImageTransformer2DModel(
                num_layers=sizes.blocks,
                attention_head_dim=sizes.head_dim,
                num_attention_heads=sizes.heads,
                joint_attention_dim=sizes.text_hidden,
                axes_dims_rope=sizes.rope,
            ).eval()
            vae = AutoencoderKLQwenImage(
                base_dim=sizes.vae_base, num_res_blocks=sizes.vae_res_blocks
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    pipe = QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def cache_fields(steps: int) -> dict[str, Any]:
    """DBCache with a fixed compute/cache schedule (see the module docstring)."""
    import cache_dit

    return {
        "Fn_compute_blocks": 1,
        "Bn_compute_blocks": 0,
        "steps_computation_mask": cache_dit.steps_mask(total_steps=steps, mask_policy="medium"),
        "steps_computation_policy": "static",
    }


def decompile(module: Any) -> None:
    """Back to eager blocks (nn.Module.compile keeps the compiled call beside the plain one)."""
    for sub in module.modules():
        if getattr(sub, "_compiled_call_impl", None) is not None:
            sub._compiled_call_impl = None


class Bench:
    def __init__(self, sizes: Sizes, device: str, budget: float) -> None:
        self.sizes, self.device = sizes, device
        self.deadline = time.perf_counter() + budget
        self.rows: list[dict[str, Any]] = []
        self.plain = 0.0

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def sync(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(self, call: Any) -> float:
        self.sync()
        started = time.perf_counter()
        call()
        self.sync()
        return time.perf_counter() - started

    def record(self, name: str, seconds: float, **extra: Any) -> None:
        ratio = seconds / self.plain if self.plain else 1.0
        self.rows.append(
            {"variant": name, "seconds": round(seconds, 3), "vs_plain": round(ratio, 3), **extra}
        )
        notes = "  ".join(f"{k} {v}" for k, v in extra.items())
        print(f"{name:<28} {seconds:>8.2f} s {ratio:>6.2f}x  {notes}", flush=True)

    def save(self) -> None:
        from bench._mesh import save

        core_ratio = next((r["vs_plain"] for r in self.rows if r["variant"] == "core"), None)
        if core_ratio is not None:
            print(f"target: core <= 1.02x of plain: {'MET' if core_ratio <= 1.02 else 'NOT MET'}")
        best = min(
            (r["vs_plain"] for r in self.rows if r["variant"] not in ("plain", "core")),
            default=None,
        )
        core = next((r["vs_plain"] for r in self.rows if r["variant"] == "core"), None)
        save(
            "gpu" if self.sizes is FULL else "gpu_small",
            {
                "device": device_name(self.device),
                "size": self.sizes.size,
                "steps": self.sizes.steps,
                "rows": self.rows,
                "core_target": "core <= 1.02x of plain",
                "core_met": core is not None and core <= 1.02,
                "target": "best acceleration <= 0.5x of plain",
                "met": best is not None and best <= 0.5,
            },
        )

    def fits(self, name: str, estimate: float) -> bool:
        if self.left() < estimate:
            print(
                f"{name:<28} skipped: {self.left():.0f} s left, needs about {estimate:.0f} s",
                flush=True,
            )
            return False
        return True


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return "CPU"


async def run(bench: Bench, pipe: Any) -> None:
    from services.modelserver.acceleration import Acceleration, AccelerationSettings
    from services.modelserver.acceleration_cache import enable_cache, last_stats
    from services.modelserver.loader import LoadedPipeline
    from services.qwen_image.generator import GenerateSpec, Generator
    from services.qwen_image.pipeline import TextToImagePipeline
    from services.qwen_image.settings import QwenImageSettings

    sizes, device = bench.sizes, bench.device
    settings = QwenImageSettings(
        default_width=sizes.size, default_height=sizes.size, max_size=max(2048, sizes.size),
        default_steps=sizes.steps, device=device,
    )  # fmt: skip
    loaded = LoadedPipeline(pipe, "random weights", "QwenImagePipeline", device, pipe.dtype, 0.0)
    core = TextToImagePipeline(loaded, settings)
    generator = Generator(settings, pipeline=core)
    spec = GenerateSpec(
        prompt=PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=4.0, seed=SEED,
        num_inference_steps=sizes.steps,
    )  # fmt: skip
    job = await generator.prepare(spec)
    arguments = core.arguments  # the server's own pipe(...) arguments, fresh generators each call

    def plain() -> None:
        pipe(**arguments(job))

    def served() -> None:
        asyncio.run_coroutine_threadsafe(generator.generate(spec), loop).result()

    loop = asyncio.get_running_loop()
    print(
        f"{device_name(device)}: {sizes.size}x{sizes.size}, {sizes.steps} steps, true CFG 4",
        flush=True,
    )
    first = await asyncio.to_thread(bench.timed, plain)  # warm-up (kernels, allocator)
    print(f"{'first call (warm-up)':<28} {first:>8.2f} s", flush=True)
    # Plain and core alternate, two rounds; the faster of each (the less disturbed run) counts.
    plains, cores = [await asyncio.to_thread(bench.timed, plain)], []
    for round_ in range(2):
        if not bench.fits(f"core round {round_ + 1}", plains[0] * (1.2 if round_ else 3.5)):
            break
        cores.append(await asyncio.to_thread(bench.timed, served))
        if round_ == 0:
            plains.append(await asyncio.to_thread(bench.timed, plain))
    bench.plain = min(plains)
    bench.record("plain", bench.plain, runs=len(plains))
    if cores:
        bench.record("core", min(cores), runs=len(cores))

    compiled = False
    if bench.fits("compile regional", bench.plain * 3 + 120):
        acceleration = Acceleration(AccelerationSettings(compile="regional"))
        await asyncio.to_thread(acceleration.apply, pipe, device, sizes.size, sizes.size)
        compiled = True
        seconds = await asyncio.to_thread(bench.timed, plain)
        bench.record("compile regional", seconds, warm_up_s=round(acceleration.warmup_seconds, 1))
    cached = False
    if bench.fits("compile + cache", bench.plain * 1.5):
        fields = cache_fields(sizes.steps)
        enable_cache(pipe, "dbcache", fields, "gpu")
        cached = True
        seconds = await asyncio.to_thread(bench.timed, plain)
        name = "compile + cache" if compiled else "cache"
        bench.record(name, seconds, cached_steps=last_stats(pipe).cached_steps)
    if cached and compiled and bench.fits("cache", bench.plain * 1.5):
        decompile(pipe.transformer)
        seconds = await asyncio.to_thread(bench.timed, plain)
        bench.record("cache", seconds, cached_steps=last_stats(pipe).cached_steps)
    if cached and bench.fits("fp8 + compile + cache", bench.plain + 240):
        try:
            fp8 = Acceleration(AccelerationSettings(quantize="fp8", compile="regional"))
            await asyncio.to_thread(fp8.apply, pipe, device, sizes.size, sizes.size)
        except Exception as exc:  # noqa: BLE001 - say why and keep the table
            print(f"{'fp8 + compile + cache':<28} not run: {exc}", flush=True)
        else:
            seconds = await asyncio.to_thread(bench.timed, plain)
            bench.record("fp8 + compile + cache", seconds, warm_up_s=round(fp8.warmup_seconds, 1))
    await generator.close()
    bench.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--small", action="store_true", default=bool(os.environ.get("BENCH_GPU_SMALL"))
    )
    parser.add_argument(
        "--budget", type=float, default=float(os.environ.get("BENCH_GPU_BUDGET", 540))
    )
    args = parser.parse_args(argv or [])  # `python -m bench all` calls main() with none
    started = time.perf_counter()
    missing = missing_packages()
    if missing:
        print(
            "missing packages: "
            + ", ".join(missing)
            + "\ncarry their wheels: pip download --no-deps "
            "-d wheels "
            + " ".join(missing)
            + " ; then on the device: pip install --no-deps wheels/*.whl"
        )
        return 2
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.small:
        print("no CUDA device: run with --small for a CPU trial")
        return 2
    sizes = SMALL if args.small else FULL
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = build_pipeline(sizes, device, dtype)
    bench = Bench(sizes, device, args.budget - (time.perf_counter() - started))
    print(
        f"built in {time.perf_counter() - started:.0f} s ({sizes.blocks} blocks, {device}, {dtype})",
        flush=True,
    )
    asyncio.run(run(bench, pipe))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
