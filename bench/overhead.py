"""Mesh overhead: the same generation in-process, through the gRPC model server, and through the
gateway (b64_json, and url with the storage service and S3), side by side in one run.

Request: the tiny Qwen-Image pipeline, 4 steps, n=1, fixed seed, at 256x256 and 1024x1024.
Variants (each call alone, the order rotated round by round so drifting load hits all alike):

- in-process: `pipeline(...)` in this process with the server's own arguments, timed on the main
  thread and on a worker thread (where the server runs it); the faster median is the baseline,
  since torch's speed on a loaded shared machine differs between the two;
- gRPC: ImageGeneration.Generate to `python -m services.qwen_image`;
- gateway b64_json / gateway url: POST /v1/images/generations to `python -m services.gateway`.

Reported: p50 / p95 wall time and the ratio of each p50 to in-process; for the served variants
also the p50 of the time outside the pipeline (wall minus the pipeline time the server reports)
and the cost ratio, (in-process p50 + that time) / in-process p50. The gateway's 256x256 answer
is checked to hold the same pixels as the in-process image, so every variant does the same model
work. Target: gateway b64_json within 1.10x of in-process at 256x256, judged on the cost ratio: on
a shared 2-core machine the pipeline's own time swings by more than 10% from call to call (the
wall ratio is printed beside it), while the time outside the pipeline is what the mesh adds.

    python -m bench overhead          (BENCH_QUICK=1: 256x256 only, fewer rounds)
"""

from __future__ import annotations

import base64
import io
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import numpy as np
from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image

from bench._mesh import QUICK, BenchMesh, percentile, save
from services.common.channels import channel_options
from services.qwen_image.generator import GenerateSpec, Generator
from services.qwen_image.pipeline import TextToImagePipeline
from services.qwen_image.settings import QwenImageSettings
from services.tinymodels import MODELS_DIR, TINY_IMAGE_DIR

STEPS, SEED, PROMPT = 4, 1234, "a lighthouse on a cliff at dusk, oil painting"
TARGET = 1.10
CASES = [(256, 3)] if QUICK else [(256, 7), (1024, 3)]  # (size, rounds)
VARIANTS = ["in-process", "in-process (thread)", "gRPC", "gateway b64_json", "gateway url"]

Call = Callable[[], tuple[float | None, Any]]  # -> (pipeline seconds the server reports, output)


def _calls(
    size: int,
    local: TextToImagePipeline,
    generator: Generator,
    stub: qwen_image_pb2_grpc.ImageGenerationStub,
    http: httpx.Client,
    thread: ThreadPoolExecutor,
) -> dict[str, Call]:
    job = generator.check(
        GenerateSpec(prompt=PROMPT, width=size, height=size, num_inference_steps=STEPS, seed=SEED)
    )
    request = qwen_image_pb2.GenerateRequest(
        prompt=PROMPT, width=size, height=size, num_inference_steps=STEPS, seed=SEED
    )

    def pipe() -> Any:
        return local.loaded.pipe(**local.arguments(job)).images[0]

    def served() -> tuple[float, Any]:
        result = stub.Generate(request, timeout=1800)
        return result.elapsed_seconds, result.images[0].data

    def gateway(response_format: str) -> Call:
        body = {
            "prompt": PROMPT,
            "size": f"{size}x{size}",
            "num_inference_steps": STEPS,
            "seed": SEED,
            "response_format": response_format,
        }

        def call() -> tuple[float, Any]:
            answer = http.post("/v1/images/generations", json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"gateway answered {answer.status_code}: {answer.text[:300]}")
            return _model_seconds(answer.headers["server-timing"]), answer.json()["data"][0]

        return call

    return {
        "in-process": lambda: (None, pipe()),
        "in-process (thread)": lambda: (None, thread.submit(pipe).result()),
        "gRPC": served,
        "gateway b64_json": gateway("b64_json"),
        "gateway url": gateway("url"),
    }


def _model_seconds(server_timing: str) -> float:
    for part in server_timing.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name == "model":
            return float(duration) / 1000
    raise RuntimeError(f"no model time in Server-Timing: {server_timing!r}")


def _same_pixels(local_image: Any, answer: dict[str, str]) -> bool:
    served = Image.open(io.BytesIO(base64.b64decode(answer["b64_json"]))).convert("RGB")
    return bool(np.array_equal(np.asarray(local_image), np.asarray(served)))


def _case(size: int, rounds: int, calls: dict[str, Call]) -> dict[str, Any]:
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    outside: dict[str, list[float]] = {name: [] for name in VARIANTS}
    outputs: dict[str, Any] = {}
    for index in range(rounds):
        shift = index % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            start = time.perf_counter()
            model, outputs[name] = calls[name]()
            wall = time.perf_counter() - start
            walls[name].append(wall)
            if model is not None:
                outside[name].append(wall - model)
    baseline = min(
        statistics.median(walls["in-process"]), statistics.median(walls["in-process (thread)"])
    )
    row: dict[str, Any] = {
        "size": f"{size}x{size}",
        "rounds": rounds,
        "in_process_p50_ms": round(baseline * 1000, 1),
    }
    for name in VARIANTS:
        p50 = statistics.median(walls[name])
        added = statistics.median(outside[name]) if outside[name] else None
        row[name] = {
            "p50_ms": round(p50 * 1000, 1),
            "p95_ms": round(percentile(walls[name], 0.95) * 1000, 1),
            "ratio": round(p50 / baseline, 3),
            "outside_pipeline_p50_ms": None if added is None else round(added * 1000, 1),
            "cost_ratio": None if added is None else round((baseline + added) / baseline, 3),
            "seconds": [round(w, 4) for w in walls[name]],
        }
    row["same_pixels"] = _same_pixels(outputs["in-process"], outputs["gateway b64_json"])
    return row


def main() -> dict[str, Any]:
    from services.tinymodels.builder import build_all

    build_all(MODELS_DIR)
    settings = QwenImageSettings(location=str(TINY_IMAGE_DIR))
    local = TextToImagePipeline.load(settings)
    generator = Generator(settings, local)
    rows = []
    with (
        BenchMesh(env={"qwen_image": {"QWEN_IMAGE_MAX_QUEUE": "64"}}) as mesh,
        grpc.insecure_channel(mesh.model_target, options=channel_options()) as channel,
        httpx.Client(base_url=mesh.gateway_url, timeout=1800) as http,
        ThreadPoolExecutor(max_workers=1) as thread,
    ):
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        for size, rounds in CASES:
            calls = _calls(size, local, generator, stub, http, thread)
            for call in calls.values():  # warm: lazy initialisation, connections, the bucket
                call()
            rows.append(_case(size, rounds, calls))
            _print_row(rows[-1])
    first = rows[0]
    met = first["gateway b64_json"]["cost_ratio"] <= TARGET
    gateway = first["gateway b64_json"]
    print(
        f"gateway b64_json at 256x256: cost ratio {gateway['cost_ratio']:.3f}x, "
        f"wall ratio {gateway['ratio']:.3f}x"
    )
    return save(
        "overhead",
        {
            "request": f"qwen-image tiny, {STEPS} steps, n=1, seed {SEED}",
            "target": f"gateway b64_json <= {TARGET:.2f}x in-process at 256x256 (cost ratio)",
            "met": met,
            "rows": rows,
        },
    )


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['size']}, {row['rounds']} rounds; same pixels through the gateway: "
        f"{row['same_pixels']}"
    )
    print(
        f"  {'variant':<20} {'p50 ms':>9} {'p95 ms':>9} {'ratio':>7} {'outside ms':>11} "
        f"{'cost ratio':>10}"
    )
    for name in VARIANTS:
        cell = row[name]
        outside, cost = cell["outside_pipeline_p50_ms"], cell["cost_ratio"]
        print(
            f"  {name:<20} {cell['p50_ms']:>9.1f} {cell['p95_ms']:>9.1f} {cell['ratio']:>7.3f} "
            f"{'' if outside is None else f'{outside:.1f}':>11} "
            f"{'' if cost is None else f'{cost:.3f}':>10}",
            flush=True,
        )


if __name__ == "__main__":
    main()
