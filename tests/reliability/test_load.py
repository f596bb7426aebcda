"""A bounded burst at a model server whose queue is far smaller than the burst: 200 requests, 32
at a time, through the gateway and straight over gRPC. Every request ends in a success or a
429 / RESOURCE_EXHAUSTED (with Retry-After through the gateway); none in a 5xx, another status or
a timeout; none is lost; the server is healthy and serves the next request afterwards.

The mesh's model servers queue at most `MAX_QUEUE` (2) calls behind the running one.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import httpx
from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc

from services.common.channels import insecure_channel
from tests.reliability.conftest import gateway_ready
from tests.support.mesh import Mesh
from tests.support.processes import grpc_serving

TOTAL, CONCURRENCY = 200, 32
BODY = {"prompt": "a cat", "size": "64x64", "num_inference_steps": 2, "response_format": "b64_json"}


async def _burst(send) -> list[object]:
    """`TOTAL` calls of `send()`, `CONCURRENCY` at a time; what each ended in."""
    outcomes: list[object] = []
    left = iter(range(TOTAL))

    async def worker() -> None:
        for _ in left:
            try:
                outcomes.append(await send())
            except Exception as exc:  # noqa: BLE001 - recorded, asserted on below
                outcomes.append(exc)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return outcomes


async def test_a_burst_through_the_gateway_is_200_or_429(mesh: Mesh) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=120, limits=limits) as http:

        async def send() -> tuple[int, str]:
            answer = await http.post("/v1/images/generations", json=BODY)
            body = answer.json()
            if answer.status_code == 200:
                assert body["data"][0]["b64_json"]
            else:
                assert body["code"] == answer.status_code and body["message"], body
            return answer.status_code, answer.headers.get("retry-after", "")

        outcomes = await _burst(send)
    statuses = Counter(o[0] if isinstance(o, tuple) else type(o).__name__ for o in outcomes)
    assert len(outcomes) == TOTAL
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= 1 and statuses[429] >= 1, statuses
    assert all(int(o[1]) >= 1 for o in outcomes if isinstance(o, tuple) and o[0] == 429)
    assert gateway_ready(mesh.gateway_url)
    assert httpx.post(f"{mesh.gateway_url}/v1/images/generations", json=BODY, timeout=60).is_success


async def test_a_burst_straight_at_the_model_server(mesh: Mesh) -> None:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a cat", width=64, height=64, num_inference_steps=2
    )
    async with insecure_channel(mesh.targets["qwen_image"]) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)

        async def send() -> str:
            try:
                await stub.Generate(request, timeout=120)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return "OK"

        outcomes = await _burst(send)
    codes = Counter(o if isinstance(o, str) else type(o).__name__ for o in outcomes)
    assert len(outcomes) == TOTAL
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] >= 1 and codes["RESOURCE_EXHAUSTED"] >= 1, codes
    assert grpc_serving(mesh.targets["qwen_image"])
