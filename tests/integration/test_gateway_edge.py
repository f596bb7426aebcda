"""The gateway's edge: API keys (401 without or with a wrong key, never logged), the request id
passed to the model server, CORS, /metrics and the OpenAPI docs."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.support.mesh import Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, port_open
from tests.support.waiting import wait_until

KEY = "sk-test-3f9a7c1e"
IMAGE_CAP = 64 * 1024


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


REQUEST = {
    "prompt": "a cat",
    "size": "64x64",
    "num_inference_steps": 2,
    "response_format": "b64_json",
}


@pytest.fixture(scope="module")
def keyed(mesh: Mesh) -> Iterator[str]:
    """A second gateway over the same backends, with API keys and CORS configured."""
    port = free_port()
    env = {
        **{k: v for k, v in mesh.process("gateway").env.items() if k.startswith("GATEWAY_")},
        "GATEWAY_PORT": str(port),
        "GATEWAY_API_KEYS": f"other-key,{KEY}",
        "GATEWAY_CORS_ORIGINS": "https://app.example",
        "GATEWAY_MAX_IMAGE_BYTES": str(IMAGE_CAP),
        # Far shorter than any generation: every one of this gateway's generations times out.
        "GATEWAY_GENERATE_DEADLINE_SECONDS": "0.01",
    }
    process = ServiceProcess.module(
        "gateway-keyed", "services.gateway", env=env, ready=lambda: port_open("127.0.0.1", port)
    )
    process.log_path.write_text("")
    process.start()
    yield f"http://127.0.0.1:{port}"
    process.stop()
    assert KEY not in process.log_path.read_text()


def test_missing_or_wrong_key_is_401(keyed: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        answer = httpx.post(f"{keyed}/v1/images/generations", json=REQUEST, headers=headers)
        body = answer.json()
        assert answer.status_code == 401 and body["code"] == 401, body
        assert "API key" in body["message"]
        assert answer.headers["www-authenticate"] == "Bearer"


def test_the_right_key_passes_and_only_healthz_needs_none(keyed: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{keyed}/v1/models", headers=auth).status_code == 200
    assert httpx.get(f"{keyed}/readyz", headers=auth).status_code == 200
    assert httpx.get(f"{keyed}/healthz").status_code == 200
    assert httpx.get(f"{keyed}/readyz").status_code == 401


def test_an_image_over_the_per_image_cap_is_413(keyed: str) -> None:
    noise = io.BytesIO()
    Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3)).save(noise, format="PNG")
    assert len(noise.getvalue()) > IMAGE_CAP
    auth = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(
        f"{keyed}/v1/images/edits",
        data={"prompt": "a hat"},
        files=[
            ("image", ("a.png", png_bytes(), "image/png")),
            ("image", ("b.png", noise.getvalue(), "image/png")),
        ],
        headers=auth,
    )
    body = answer.json()
    assert answer.status_code == 413 and body["error"]["param"] == "image[1]", body
    assert "per-image limit" in body["message"]


def test_a_passed_deadline_is_504(keyed: str) -> None:
    answer = httpx.post(
        f"{keyed}/v1/images/generations",
        json=REQUEST,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    body = answer.json()
    assert answer.status_code == 504 and body["code"] == 504, body
    assert "qwen-image did not answer within the deadline" in body["message"]


def test_cors_preflight(keyed: str) -> None:
    answer = httpx.options(
        f"{keyed}/v1/images/generations",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example"


def test_the_request_id_reaches_the_model_server(mesh: Mesh) -> None:
    rid = "trace-gw-0042"
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/generations",
        json=REQUEST,
        headers={"X-Request-ID": rid},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["request_id"] == rid
    # Each process writes its line when its own call ends, which may be just after the client
    # has read the answer: wait for the lines, bounded.
    for name in ("qwen_image", "gateway"):
        log = mesh.process(name).log_path
        wait_until(lambda log=log: f"[{rid}]" in log.read_text(), 10, f"{name}'s log line")


def test_metrics_and_docs(mesh: Mesh) -> None:
    httpx.get(f"{mesh.gateway_url}/v1/models")
    metrics = httpx.get(f"{mesh.gateway_url}/metrics").text
    assert 'imagemesh_http_requests_total{route="/v1/models",status="200"}' in metrics
    schema = httpx.get(f"{mesh.gateway_url}/openapi.json").json()
    for path in (
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
    ):
        assert path in schema["paths"]
    assert {"OpenAIImageRequest", "DashScopeImageRequest", "EditJsonRequest"} <= set(
        schema["components"]["schemas"]
    )
    assert httpx.get(f"{mesh.gateway_url}/docs").status_code == 200
