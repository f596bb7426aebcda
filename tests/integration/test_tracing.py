"""Traces across the mesh: one generation through real processes is one trace.

The whole mesh runs as processes with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local OTLP/HTTP
receiver (tests/support/otlp.py). One image generation through the gateway must give one trace
id across the gateway, the model server and the storage service, the parent links crossing the
processes, the request id on the gateway's span, and the model server's spans for the queue wait
and each pipeline phase. Without the variable, no SDK, exporter or instrumentation is imported.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Mesh, start_mesh
from tests.support.otlp import Receiver, Span, otlp_receiver
from tests.support.waiting import wait_until

SERVER, CLIENT = 2, 3  # OTLP span kinds
SERVICES = ("storage", "qwen_image", "qwen_edit", "providers", "tasks", "gateway")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_mesh(s3_server, receiver: Receiver) -> Iterator[Mesh]:  # type: ignore[no-untyped-def]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    mesh = start_mesh(s3_server.env(), s3_server.endpoint, {name: env for name in SERVICES})
    yield mesh
    mesh.stop()


def trace_of(
    receiver: Receiver, request_id: str, services: set[str], names: frozenset[str] = frozenset()
) -> list[Span]:
    """The spans of the trace whose gateway span carries `request_id`, once `services` (and the
    model server's last phase) and the spans called `names` have reported (a span is exported
    when it ends: a task's "run task" ends after its model and storage calls have reported)."""

    def complete() -> list[Span] | None:
        spans = receiver.snapshot()
        roots = [
            s
            for s in spans
            if s.service == "gateway" and s.attributes.get("imagemesh.request_id") == request_id
        ]
        if not roots:
            return None
        trace = [s for s in spans if s.trace_id == roots[0].trace_id]
        seen = {s.service for s in trace}
        named = {s.name for s in trace}
        return trace if services <= seen and names <= named else None

    return wait_until(complete, 60, f"the spans of request {request_id} from {sorted(services)}")


def test_one_generation_is_one_trace_across_the_services(
    traced_mesh: Mesh, receiver: Receiver
) -> None:
    answer = httpx.post(
        f"{traced_mesh.gateway_url}/v1/images/generations",
        headers={"X-Request-ID": "trace-one-generation"},
        json={
            "model": "qwen-image",
            "prompt": "a red kite",
            "size": "64x64",
            "num_inference_steps": 2,
            "response_format": "url",
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    trace = trace_of(receiver, "trace-one-generation", {"gateway", "qwen_image", "storage"})

    def settled() -> bool:
        spans = trace_of(receiver, "trace-one-generation", set())
        ids = {s.span_id for s in spans}
        # Each process exports its spans in its own batches: a child may arrive before its
        # parent (a server span ends after the work inside it). Wait for the parents too; one
        # that never comes still fails (the wait times out).
        return (
            len(spans) >= len(trace)
            and any(s.name == "decode" for s in spans)
            and all(s.parent_id in ids for s in spans if s.parent_id)
        )

    wait_until(settled, 30, "the model server's phase spans and every span's parent")
    trace = trace_of(receiver, "trace-one-generation", set())
    by_id = {s.span_id: s for s in trace}
    # One tree: a single root (the gateway's HTTP span), every other span's parent in the trace.
    roots = [s for s in trace if not s.parent_id]
    assert [(r.service, r.kind) for r in roots] == [("gateway", SERVER)]
    assert roots[0].attributes["imagemesh.request_id"] == "trace-one-generation"
    assert all(s.parent_id in by_id for s in trace if s.parent_id), "a parent is missing"
    # The links cross the processes: each backend's server span is the child of a gateway span.
    for service in ("qwen_image", "storage"):
        servers = [s for s in trace if s.service == service and s.kind == SERVER]
        assert servers, f"no server span from {service}"
        for span in servers:
            assert by_id[span.parent_id].service == "gateway"
            assert by_id[span.parent_id].kind == CLIENT
            assert span.attributes["imagemesh.request_id"] == "trace-one-generation"
    names = [s.name for s in trace if s.service == "qwen_image"]
    for phase in ("queue wait", "pipeline call", "encode prompt", "decode"):
        assert phase in names, f"no {phase!r} span: {names}"
    steps = [s for s in trace if s.name == "denoise step"]
    assert sorted(s.attributes["imagemesh.step"] for s in steps) == [1, 2]
    call = next(s for s in trace if s.name == "pipeline call")
    for span in steps:
        assert span.parent_id == call.span_id
        assert call.start_ns <= span.start_ns <= span.end_ns <= call.end_ns
    assert any(s.name == "upload to S3" and s.service == "storage" for s in trace)


def test_a_task_created_through_the_gateway_joins_the_request_trace(
    traced_mesh: Mesh, receiver: Receiver
) -> None:
    answer = httpx.post(
        f"{traced_mesh.gateway_url}/api/v1/tasks/",
        headers={"X-Request-ID": "trace-one-task"},
        json={
            "model": "qwen-image",
            "parameters": {"prompt": "a lighthouse", "size": "64*64", "num_inference_steps": 2},
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    # The worker's run (later, in whichever replica) continues the create request's trace: its
    # calls to the model server and to storage are in it too.
    trace = trace_of(
        receiver,
        "trace-one-task",
        {"gateway", "tasks", "qwen_image", "storage"},
        frozenset({"run task"}),
    )
    by_id = {s.span_id: s for s in trace}
    created = [s for s in trace if s.service == "tasks" and s.kind == SERVER]
    assert created
    assert all(s.attributes["imagemesh.request_id"] == "trace-one-task" for s in created)
    (run,) = [s for s in trace if s.name == "run task"]
    # Its parent: the CreateTask call the gateway made (the run may start much later).
    assert run.service == "tasks" and by_id[run.parent_id] in created
    generated = [s for s in trace if s.service == "qwen_image" and s.kind == SERVER]
    assert generated and all(by_id[s.parent_id].service == "tasks" for s in generated)


def test_without_an_endpoint_no_sdk_exporter_or_instrumentation_is_imported() -> None:
    script = """
import os, sys
for name in list(os.environ):
    if name.startswith("OTEL_"):
        del os.environ[name]
from services.common.channels import insecure_channel
from services.common.server import MeshServer
from services.common.settings import ServerSettings
from services.gateway.app import build_app
from services.gateway.settings import GatewaySettings
import asyncio

async def main():
    MeshServer(ServerSettings(listen="127.0.0.1:0", metrics_listen=""), ["x"])
    await insecure_channel("127.0.0.1:1").close()
    build_app(GatewaySettings())

asyncio.run(main())
# FastAPI itself imports the OpenTelemetry API when it is installed (fastapi.telemetry); the
# SDK, the exporter and the instrumentations are what tracing would install.
heavy = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
print(loaded)
assert not loaded, loaded
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
