"""kill -9 each service in turn while a client keeps sending requests through the gateway; the S3
server killed and brought back; a task whose model server dies under it.

What a client must see: answers before the fault succeed; while the service is down every answer
is a 503 envelope naming what is unavailable (a request in flight when the process died included),
none hangs past its deadline; once the service is back (started again, as the supervisor or
Kubernetes would, and nothing else restarted) requests succeed again. Killing the gateway itself
drops its connections (what a client of a crashed process sees), and the model server drops the
call the gateway was making.

tests/integration/test_gateway_faults.py covers a model server stopped between requests and the
full queue; tests/integration/test_storage_s3_down.py the storage service alone over a dead S3.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import S3Server
from tests.reliability.conftest import gateway_ready
from tests.reliability.stream import RequestStream, Seen
from tests.support.hosted import Hosted
from tests.support.mesh import Mesh
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.storage import png_bytes
from tests.support.waiting import wait_until

GEN = "/v1/images/generations"
SMALL = {"prompt": "a cat", "size": "64x64", "num_inference_steps": 2}
# A client's own timeout: the mesh gateway's deadlines (60 s, edits 90 s) plus a margin. A request
# that reaches it hung.
CLIENT_TIMEOUT = 120.0


def _edit_body() -> dict:
    image = "data:image/png;base64," + base64.b64encode(png_bytes(seed=3)).decode()
    return {**SMALL, "model": "qwen-image-edit", "image": image, "response_format": "b64_json"}


def _pids(*processes: ServiceProcess) -> dict[str, int]:
    return {p.name: p.proc.pid for p in processes if p.proc is not None}


def _ok(seen: Seen) -> bool:
    return seen.status == 200


def _through_the_fault(
    stream: RequestStream,
    kill: Callable[[], None],
    restart: Callable[[], None],
    *,
    in_flight: Callable[[], bool] | None = None,
    successes_after: int = 2,
) -> list[Seen]:
    """Kills once a request is in flight (`in_flight`, or after a first success), waits for a
    failure, restarts, waits for `successes_after` successes; returns all the client saw."""
    if in_flight is None:
        stream.wait_for(_ok, 0, 120, "a first success")
    else:
        wait_until(in_flight, 120, "a request in flight")
    killed = time.monotonic()
    kill()
    stream.wait_for(lambda s: not _ok(s), killed - 120, 60, "a failure after the kill")
    restart()
    first = stream.wait_for(_ok, time.monotonic(), 120, "a success after the restart")
    moment = first.at
    for _ in range(successes_after - 1):
        moment = stream.wait_for(_ok, moment + 0.001, 60, "another success").at
    seen = stream.since(0)
    after = [s for s in seen if s.at > first.at]
    assert all(_ok(s) for s in after), [(s.status, s.error) for s in after]
    for s in seen:
        assert not s.error.startswith("timeout"), s  # nothing hung
        if not _ok(s):
            assert s.status == 503, s
    return seen


def _unavailable_envelopes(seen: list[Seen], names: str) -> None:
    """Every failure the client saw is an envelope naming what is unavailable."""
    failures = [s for s in seen if s.status is not None and s.status != 200]
    assert failures
    for failure in failures:
        body = failure.body
        assert isinstance(body, dict) and body["code"] == failure.status, failure
        assert names in body["message"] and "Traceback" not in body["message"], body


@pytest.mark.parametrize(
    ("service", "body", "names"),
    [
        ("qwen_image", {**SMALL, "response_format": "b64_json"}, "qwen-image"),
        ("storage", {**SMALL, "response_format": "url"}, "storage"),
        ("qwen_edit", _edit_body(), "qwen-image-edit"),
    ],
)
def test_kill_9_a_backend_during_a_request_stream(
    whole_mesh: Mesh, service: str, body: dict, names: str
) -> None:
    mesh = whole_mesh
    path = "/v1/images/edits" if service == "qwen_edit" else GEN
    others = [p for name, p in mesh.processes.items() if name != service]
    before = _pids(*others)
    # An edit takes seconds on CPU (inputs are resized to about a megapixel): kill it mid-call
    # instead of waiting for a first success, and stop at the first success after the restart.
    edit = service == "qwen_edit"
    with RequestStream(mesh.gateway_url, "POST", path, CLIENT_TIMEOUT, json=body) as stream:
        seen = _through_the_fault(
            stream,
            kill=mesh.process(service).kill,
            restart=lambda: (
                mesh.ensure_running(service),
                wait_until(lambda: gateway_ready(mesh.gateway_url), 60, "gateway /readyz"),
            ),
            in_flight=(lambda: mesh.in_flight("qwen_edit", "EditStream") == 1) if edit else None,
            successes_after=1 if edit else 2,
        )
    _unavailable_envelopes(seen, names)
    assert _pids(*others) == before  # nothing else was restarted


def test_kill_9_the_providers_service_during_a_chat_stream(hosted: Hosted, fakes) -> None:
    providers = hosted.providers
    gateway_pid = hosted.gateway.proc.pid  # type: ignore[union-attr]
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hello"}]}
    with RequestStream(hosted.url, "POST", "/v1/chat/completions", 60, json=body) as stream:
        seen = _through_the_fault(
            stream,
            kill=providers.kill,
            restart=lambda: (
                providers.start(),
                wait_until(lambda: grpc_serving(hosted.providers_target), 60, "providers"),
            ),
        )
    _unavailable_envelopes(seen, "gpt-5")
    assert hosted.gateway.proc.pid == gateway_pid  # type: ignore[union-attr]


def test_kill_9_the_gateway_during_a_generation(whole_mesh: Mesh) -> None:
    """The client's connection drops (no answer, no hang); the model server drops the call it
    was serving for the dead gateway; the gateway started again serves at once."""
    mesh = whole_mesh
    gateway = mesh.process("gateway")
    others = [p for name, p in mesh.processes.items() if name != "gateway"]
    before = _pids(*others)
    # Long enough to be surely in flight when the gateway dies; dropped, so it never runs out.
    long_job = {"prompt": "a long one", "size": "256x256", "num_inference_steps": 100}
    with RequestStream(mesh.gateway_url, "POST", GEN, CLIENT_TIMEOUT, json=long_job) as stream:
        wait_until(lambda: mesh.in_flight("qwen_image", "GenerateStream") == 1, 60, "a generation")
        killed = time.monotonic()
        gateway.kill()
        dropped = stream.wait_for(lambda s: s.status is None, killed - 60, 30, "the dropped call")
        assert "timeout" not in dropped.error
        wait_until(
            lambda: mesh.in_flight("qwen_image", "GenerateStream") == 0, 60, "the call dropped"
        )
    mesh.ensure_running("gateway")
    answer = httpx.post(
        mesh.gateway_url + GEN, json={**SMALL, "response_format": "b64_json"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert _pids(*others) == before


def test_s3_killed_and_back(whole_mesh: Mesh, s3_server: S3Server) -> None:
    """Stored links fail with 503 naming object storage while S3 is down; S3 back on the same
    endpoint and data folder (as the supervisor brings it back) serves the next request, and the
    links handed out before the kill still give their images."""
    mesh = whole_mesh
    before = _pids(*mesh.processes.values())
    body = {**SMALL, "response_format": "url"}

    with RequestStream(mesh.gateway_url, "POST", GEN, CLIENT_TIMEOUT, json=body) as stream:
        seen = _through_the_fault(stream, kill=s3_server.process.kill, restart=s3_server.restart)
    _unavailable_envelopes(seen, "storage")
    # The first success came before the kill (the fault waits for one), the last after the restart.
    first = next(s for s in seen if _ok(s))
    last = next(s for s in reversed(seen) if _ok(s))
    for answer in (first, last):
        link = answer.body["data"][0]["url"]
        assert link.startswith(mesh.link_prefix)
        assert httpx.get(link, timeout=30).content.startswith(b"\x89PNG")
    assert _pids(*mesh.processes.values()) == before


def test_a_task_whose_model_server_dies_ends_cleanly(whole_mesh: Mesh) -> None:
    """The task does not hang in RUNNING: it ends (failed with a code and message, or run again
    once the server is back), and a new task succeeds."""
    mesh = whole_mesh
    client = httpx.Client(base_url=mesh.gateway_url, timeout=60)
    created = client.post(
        "/api/v1/tasks/",
        json={
            "model": "qwen-image",
            "parameters": {"prompt": "a long one", "size": "256*256", "num_inference_steps": 60},
        },
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["results"]["task_id"]
    wait_until(lambda: mesh.in_flight("qwen_image", "Generate") == 1, 60, "the task to run")
    mesh.process("qwen_image").kill()
    status: dict = {}

    def ended() -> bool:
        status.update(client.get(f"/api/v1/tasks/{task_id}/status").json()["results"])
        return status["status"] not in ("pending", "running")

    mesh.ensure_running("qwen_image")
    wait_until(ended, 120, "the task to end")
    if status["status"] != "completed":
        assert status["error"]["code"] and status["error"]["message"], status
    client.close()
