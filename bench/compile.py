"""Regional compile: steady-state seconds per denoising step, `COMPILE=regional` vs none (CPU).

The same 8-block tiny pipeline as bench/cache.py (the 2-block default leaves too little of a step
in the blocks that are compiled). `Acceleration.apply` compiles the repeated transformer blocks
and warms up at the bench's size, as the server does before it reports SERVING; its time, less
one plain generation of the same warm-up, is the warm-up cost. Inductor's on-disk cache goes to a
fresh folder, so the cost is that of a cold start (a server whose cache folder survives restarts
pays much less). Seconds per step: the median gap between step-end callbacks, the first step of
each call left out, over the rounds.

    python -m bench compile          (BENCH_QUICK=1: fewer steps and rounds)
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "warning")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="imagemesh-bench-inductor-")

import statistics
import time
from typing import Any

import torch

from bench._mesh import QUICK, save
from bench.cache import BLOCKS, NEGATIVE, PROMPT, SEED, build
from services.modelserver.acceleration import Acceleration, AccelerationSettings, warm_up

SIZE = 256
STEPS = 6 if QUICK else 12
ROUNDS = 2 if QUICK else 3


def step_seconds(pipe: Any) -> list[float]:
    """Gaps between step ends of one generation, the first step left out."""
    ends: list[float] = []

    def on_step(_pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        ends.append(time.perf_counter())
        return tensors

    pipe(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        true_cfg_scale=4.0,
        width=SIZE,
        height=SIZE,
        num_inference_steps=STEPS,
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="latent",
        callback_on_step_end=on_step,
    )
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def main() -> None:
    plain, compiled = build(), build()
    started = time.perf_counter()
    warm_up(plain, "cpu", SIZE, SIZE)
    plain_warm_up = time.perf_counter() - started
    acceleration = Acceleration(AccelerationSettings(compile="regional"))
    started = time.perf_counter()
    acceleration.apply(compiled, "cpu", SIZE, SIZE)
    apply_seconds = time.perf_counter() - started
    gaps: dict[str, list[float]] = {"none": [], "regional": []}
    for round_ in range(ROUNDS):
        order = [("none", plain), ("regional", compiled)]
        for name, pipe in order if round_ % 2 == 0 else reversed(order):
            gaps[name] += step_seconds(pipe)
    per_step = {name: statistics.median(values) for name, values in gaps.items()}
    ratio = per_step["regional"] / per_step["none"]
    warm_up_cost = apply_seconds - plain_warm_up
    print(f"{BLOCKS}-block tiny pipeline, {SIZE}x{SIZE}, true CFG 4, {ROUNDS} rounds of {STEPS}")
    print(f"{'compile':<10} {'s/step p50':>11} {'vs none':>8}")
    for name in ("none", "regional"):
        print(f"{name:<10} {per_step[name]:>11.4f} {per_step[name] / per_step['none']:>7.2f}x")
    print(
        f"warm-up: {apply_seconds:.1f} s for compile + first generation, "
        f"{warm_up_cost:.1f} s more than a plain one (cold inductor cache)"
    )
    save(
        "compile",
        {
            "blocks": BLOCKS,
            "size": SIZE,
            "steps": STEPS,
            "seconds_per_step": {k: round(v, 4) for k, v in per_step.items()},
            "ratio": round(ratio, 3),
            "warm_up_seconds": round(apply_seconds, 1),
            "warm_up_cost_seconds": round(warm_up_cost, 1),
        },
    )


if __name__ == "__main__":
    main()
