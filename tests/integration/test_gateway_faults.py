"""Faults behind the gateway: a model server stopped (503 envelope, /readyz 503 naming it) and
started again (the next request succeeds, same gateway process), and a full queue (429 with
Retry-After)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import grpc
import httpx
import pytest
from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc

from tests.support.mesh import Mesh
from tests.support.waiting import wait_until

REQUEST = {
    "prompt": "a cat",
    "size": "64x64",
    "num_inference_steps": 2,
    "response_format": "b64_json",
}


def _ready(mesh: Mesh) -> bool:
    return httpx.get(f"{mesh.gateway_url}/readyz", timeout=5).status_code == 200


@pytest.fixture
def whole_mesh(mesh: Mesh) -> Iterator[Mesh]:
    """Leaves every model server running for the next test, whatever this one stopped."""
    yield mesh
    for name in ("qwen_image", "qwen_edit"):
        mesh.ensure_running(name)
    wait_until(lambda: _ready(mesh), 60, "gateway /readyz")


def test_a_stopped_model_server_is_503_and_comes_back(whole_mesh: Mesh) -> None:
    mesh = whole_mesh
    gateway_pid = mesh.process("gateway").proc.pid  # type: ignore[union-attr]
    assert _ready(mesh)
    mesh.process("qwen_image").kill()

    ready = httpx.get(f"{mesh.gateway_url}/readyz", timeout=10)
    body = ready.json()
    assert ready.status_code == 503 and body["code"] == 503
    assert "qwen_image" in body["message"] and body["backends"]["qwen_image"] != "SERVING"
    assert body["backends"]["storage"] == "SERVING"

    answer = httpx.post(f"{mesh.gateway_url}/v1/images/generations", json=REQUEST, timeout=60)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == 503
    assert "qwen-image is unavailable" in answer.json()["message"]

    mesh.ensure_running("qwen_image")
    wait_until(lambda: _ready(mesh), 60, "gateway /readyz after the restart")
    answer = httpx.post(f"{mesh.gateway_url}/v1/images/generations", json=REQUEST, timeout=60)
    assert answer.status_code == 200, answer.text
    assert mesh.process("gateway").proc.pid == gateway_pid  # type: ignore[union-attr]


def test_a_full_queue_is_429_with_retry_after(whole_mesh: Mesh) -> None:
    """One job running and `max_queue` waiting (held by direct streams), then the gateway asks."""
    mesh = whole_mesh
    slow = qwen_image_pb2.GenerateRequest(
        prompt="slow", width=256, height=256, num_inference_steps=100
    )
    with grpc.insecure_channel(mesh.targets["qwen_image"]) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        calls = []
        try:
            for index in range(mesh.max_queue + 1):
                call = stub.GenerateStream(slow, timeout=120)
                calls.append(call)
                # The first event says where the job stands: running (0) or queued behind others
                # (the first may wait for an earlier test's cancelled job to stop).
                first = next(call)
                while index == 0 and first.progress.queue_position != 0:
                    first = next(call)
                assert first.progress.queue_position == index, first
            answer = httpx.post(
                f"{mesh.gateway_url}/v1/images/generations", json=REQUEST, timeout=60
            )
        finally:
            for call in calls:
                call.cancel()
    body = answer.json()
    assert answer.status_code == 429, body
    assert body["code"] == 429 and "queue full" in body["message"]
    assert int(answer.headers["retry-after"]) >= 1
    assert body["error"]["type"] == "rate_limit_error"


def test_a_client_that_hangs_up_frees_the_model_server(whole_mesh: Mesh) -> None:
    """The gateway's job waits behind a long one; its client hangs up; the model server drops
    it (its GenerateStream call ends while the long job is still running)."""
    mesh = whole_mesh
    long_job = qwen_image_pb2.GenerateRequest(
        prompt="long", width=512, height=512, num_inference_steps=100
    )
    body = json.dumps(REQUEST).encode()
    with grpc.insecure_channel(mesh.targets["qwen_image"]) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        running = stub.GenerateStream(long_job, timeout=300)
        try:
            # Earlier tests' cancelled jobs may still be stopping: wait for this one to run.
            while next(running).progress.queue_position != 0:
                pass
            client = socket.create_connection(("127.0.0.1", mesh.gateway_port))
            client.sendall(
                b"POST /v1/images/generations HTTP/1.1\r\nHost: gateway\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            # The gateway's call is a GenerateStream too (one image per message): 2 with ours.
            wait_until(lambda: mesh.in_flight("qwen_image", "GenerateStream") == 2, 30, "queued")
            client.close()
            wait_until(lambda: mesh.in_flight("qwen_image", "GenerateStream") == 1, 30, "dropped")
            # The long job is still running: the gateway's job ended because it was dropped.
            assert next(running).progress.step >= 0
        finally:
            running.cancel()
