"""Graceful shutdown under a request in flight: SIGTERM to a model server and to the gateway.

The request in flight completes (200); what a new request meets meanwhile is what a client really
sees: through the gateway, a 503 envelope naming the model whose server is draining; at the gateway
itself, a refused connection (it has closed its listening socket; in Kubernetes the Service has
stopped sending it traffic by then). The process exits 0, and once started again serves as before.

tests/integration/test_model_server_lifecycle.py covers a model server's drain over gRPC alone,
tests/integration/test_storage_process.py the storage service's.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Mesh
from tests.support.processes import grpc_serving, port_open
from tests.support.waiting import wait_until

GEN = "/v1/images/generations"
# Seconds of work on CPU: surely still running when the signal arrives.
LONG = {"prompt": "a long one", "size": "256x256", "num_inference_steps": 30}
SMALL = {"prompt": "a cat", "size": "64x64", "num_inference_steps": 2}


class InFlight:
    """One request through the gateway, sent from a thread; `answer` once it ends."""

    def __init__(self, url: str, body: dict) -> None:
        self.answer: httpx.Response | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._send, args=(url, body), daemon=True)
        self._thread.start()

    def _send(self, url: str, body: dict) -> None:
        try:
            self.answer = httpx.post(url + GEN, json=body, timeout=120)
        except Exception as exc:  # noqa: BLE001 - asserted on by the test
            self.error = exc

    def result(self) -> httpx.Response:
        self._thread.join(timeout=150)
        assert self.error is None, self.error
        assert self.answer is not None
        return self.answer


@pytest.fixture
def restarted(mesh: Mesh) -> Iterator[Mesh]:
    yield mesh
    for name in ("qwen_image", "gateway"):
        mesh.ensure_running(name)


def test_sigterm_to_a_model_server_during_a_request(restarted: Mesh) -> None:
    mesh = restarted
    server = mesh.process("qwen_image")
    running = InFlight(mesh.gateway_url, LONG)
    wait_until(
        lambda: mesh.in_flight("qwen_image", "GenerateStream") == 1, 60, "the request to run"
    )
    server.signal(signal.SIGTERM)
    wait_until(lambda: not grpc_serving(mesh.targets["qwen_image"]), 30, "NOT_SERVING")

    refused = httpx.post(mesh.gateway_url + GEN, json=SMALL, timeout=60)
    body = refused.json()
    assert refused.status_code == 503 and body["code"] == 503, body
    assert "qwen-image" in body["message"]

    answer = running.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0]["url"].startswith(mesh.link_prefix)
    assert server.proc is not None and server.proc.wait(timeout=60) == 0

    mesh.ensure_running("qwen_image")
    wait_until(
        lambda: httpx.get(f"{mesh.gateway_url}/readyz", timeout=5).status_code == 200,
        60,
        "gateway /readyz",
    )
    assert httpx.post(mesh.gateway_url + GEN, json=SMALL, timeout=60).status_code == 200


def test_sigterm_to_the_gateway_during_a_request(restarted: Mesh) -> None:
    mesh = restarted
    gateway = mesh.process("gateway")
    running = InFlight(mesh.gateway_url, LONG)
    wait_until(
        lambda: mesh.in_flight("qwen_image", "GenerateStream") == 1, 60, "the request to run"
    )
    gateway.signal(signal.SIGTERM)
    wait_until(lambda: not port_open("127.0.0.1", mesh.gateway_port), 30, "the listener closed")

    with pytest.raises(httpx.ConnectError):
        httpx.post(mesh.gateway_url + GEN, json=SMALL, timeout=60)

    answer = running.result()
    assert answer.status_code == 200, answer.text
    assert gateway.proc is not None and gateway.proc.wait(timeout=60) == 0

    mesh.ensure_running("gateway")
    assert httpx.post(mesh.gateway_url + GEN, json=SMALL, timeout=60).status_code == 200
