"""Per-request LoRA: what an adapter costs a call, first use (load) and warm switch, against a
call without one, on the Qwen-Image server's generator in process (the tiny pipeline).

Four kinds of call of the same request (256x256, 4 steps, fixed seed), round by round:
- none: no adapter (the base weights alone);
- same: the adapter the previous call used (nothing to switch);
- switch: the other loaded adapter (one `set_adapters`, no file read);
- first use: an adapter not in memory (read from its file with `load_lora_weights`, the least
  recently used one evicted: MAX_LOADED_LORAS is 3, each round's adapter a fresh copy).

Reported: p50 ms of each kind and its extra ms over `none`. Target: a warm switch costs at most
10% of a call more than keeping the adapter (the base weights are never reloaded, so switching
is a pointer flip next to the denoising); first use is reported, not targeted: it is a file read
whose cost grows with the adapter's size (a real Qwen-Image LoRA is 100s of MB).

    python -m bench lora          (BENCH_QUICK=1: 3 rounds instead of 8; in `python -m bench all`)
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: spinning worker threads slow everything on a loaded machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import diffusers

from bench._mesh import QUICK, save
from services.modelserver.loras import LoraRef
from services.qwen_image.generator import GenerateSpec, Generator
from services.qwen_image.settings import QwenImageSettings
from services.tinymodels import MODELS_DIR, TINY_IMAGE_DIR

SIZE, STEPS, SEED = 256, 4, 99
ROUNDS = 3 if QUICK else 8
SWITCH_TARGET = 1.10  # switch p50 / same p50
KINDS = ("none", "same", "switch", "first use")


def _folder(rounds: int) -> Path:
    """A LORA_DIR: tiny-a, tiny-b, and one fresh copy of tiny-a per round (first uses)."""
    from services.tinymodels.lora import build_loras

    source = build_loras(MODELS_DIR)
    folder = Path(tempfile.mkdtemp(prefix="bench-loras-"))
    for name in ("tiny-a", "tiny-b"):
        shutil.copyfile(source / f"{name}.safetensors", folder / f"{name}.safetensors")
    for index in range(rounds):
        shutil.copyfile(source / "tiny-a.safetensors", folder / f"fresh-{index}.safetensors")
    return folder


async def _timed(generator: Generator, *names: str) -> float:
    spec = GenerateSpec(
        prompt="a lighthouse on a cliff at dusk",
        width=SIZE,
        height=SIZE,
        num_inference_steps=STEPS,
        seed=SEED,
        loras=tuple(LoraRef(name) for name in names),
    )
    started = time.perf_counter()
    await generator.generate(spec)
    return time.perf_counter() - started


async def _run(folder: Path) -> dict[str, list[float]]:
    settings = QwenImageSettings(
        location=str(TINY_IMAGE_DIR), lora_dir=str(folder), max_loaded_loras=3
    )
    generator = Generator(settings)
    await generator.load()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        for warm in ((), ("tiny-a",), ("tiny-b",)):  # lazy initialisation; both adapters in
            await _timed(generator, *warm)
        for index in range(ROUNDS):
            times["none"].append(await _timed(generator))
            await _timed(generator, "tiny-a")  # tiny-a and tiny-b loaded, tiny-a active
            times["same"].append(await _timed(generator, "tiny-a"))
            times["switch"].append(await _timed(generator, "tiny-b"))
            # Loads fresh-<index>, evicting tiny-a; the next round's tiny-a call loads it back.
            times["first use"].append(await _timed(generator, f"fresh-{index}"))
    finally:
        await generator.close()
    return times


def main() -> dict[str, Any]:
    from services.tinymodels.builder import build_all

    build_all(MODELS_DIR)
    diffusers.utils.logging.disable_progress_bar()
    folder = _folder(ROUNDS)
    try:
        times = asyncio.run(_run(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    p50 = {kind: statistics.median(values) for kind, values in times.items()}
    print(f"tiny Qwen-Image pipeline, {SIZE}x{SIZE}, {STEPS} steps, {ROUNDS} rounds, in process")
    print(f"{'call':<10} {'p50 ms':>8} {'+ms vs none':>12} {'x none':>7}")
    rows = []
    for kind in KINDS:
        extra = p50[kind] - p50["none"]
        rows.append(
            {
                "call": kind,
                "p50_ms": round(p50[kind] * 1000, 1),
                "extra_ms": round(extra * 1000, 1),
                "ratio": round(p50[kind] / p50["none"], 3),
                "seconds": [round(t, 4) for t in times[kind]],
            }
        )
        print(
            f"{kind:<10} {p50[kind] * 1000:>8.1f} {extra * 1000:>+12.1f} "
            f"{p50[kind] / p50['none']:>6.2f}x",
            flush=True,
        )
    switch_ratio = p50["switch"] / p50["same"]
    print(f"warm switch / same adapter: {switch_ratio:.3f}x")
    return save(
        "lora",
        {
            "size": SIZE,
            "steps": STEPS,
            "rounds": ROUNDS,
            "rows": rows,
            "switch_over_same": round(switch_ratio, 3),
            "target": f"warm switch p50 <= {SWITCH_TARGET:.2f}x the same adapter's p50",
            "met": switch_ratio <= SWITCH_TARGET,
        },
    )


if __name__ == "__main__":
    main()
