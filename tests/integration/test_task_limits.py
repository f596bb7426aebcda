"""Limits of the task API at the gateway (issue 19 section 2).

- `is_async: false` (seed 001): the gateway waits for the task's result while the client waits;
  a client that hangs up ends that wait at once, not after GATEWAY_TASK_SYNC_WAIT_SECONDS.
- Anonymous callers get a quota of pending tasks per client address (as keyed callers have per
  key), the address read behind GATEWAY_FORWARDED_HOPS proxies; their tasks stay readable by id.

The tasks service here runs no workers, so tasks stay queued: a wait could only end by the
client going away, and pending tasks add up.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mesh import Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.waiting import wait_until

QUOTA = 2
TASK = {"model": "qwen-image", "parameters": {"prompt": "a cat", "size": "64*64"}}


@pytest.fixture(scope="module")
def gateway(mesh: Mesh) -> Iterator[str]:
    target = f"127.0.0.1:{free_port()}"
    settings = {k: v for k, v in mesh.process("tasks").env.items() if k.startswith("TASKS_")}
    folder = tempfile.mkdtemp(prefix="sync-wait-tasks-")
    tasks = ServiceProcess.module(
        "sync-wait-tasks",
        "services.tasks",
        env={
            **settings,
            "TASKS_LISTEN": target,
            "TASKS_WORKERS": "0",
            "TASKS_MAX_PENDING_PER_KEY": str(QUOTA),
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/tasks.db",
        },
        ready=lambda: grpc_serving(target),
    ).start()
    process, url = mesh.another_gateway(
        "sync-wait-gateway",
        {
            "GATEWAY_TASKS_TARGET": target,
            "GATEWAY_TASK_SYNC_WAIT_SECONDS": "600",
            "GATEWAY_FORWARDED_HOPS": "1",
        },
    )
    yield url
    process.stop()
    tasks.stop()


def in_flight(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "imagemesh_http_in_flight":
                return sample.value
    return 0.0


def test_a_client_that_hangs_up_ends_the_sync_wait(gateway: str):
    port = int(gateway.rsplit(":", 1)[1])
    body = json.dumps(
        {
            "model": "qwen-image",
            "parameters": {"prompt": "a cat", "size": "64*64"},
            "is_async": False,
        }
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    # The /metrics request counts itself: 2 = it and the waiting create.
    wait_until(lambda: in_flight(gateway) == 2, 30, "the create waiting for its task")
    sock.close()
    wait_until(lambda: in_flight(gateway) == 1, 30, "the wait ended after the client left")


def _create(gateway: str, address: str) -> httpx.Response:
    headers = {"X-Forwarded-For": f"198.51.100.7, {address}"}  # the left one is forgeable
    return httpx.post(f"{gateway}/api/v1/tasks/", json=TASK, headers=headers, timeout=30)


def test_anonymous_callers_have_a_quota_per_address(gateway: str):
    first = [_create(gateway, "203.0.113.1") for _ in range(QUOTA)]
    assert [a.status_code for a in first] == [200] * QUOTA, [a.text for a in first]
    over = _create(gateway, "203.0.113.1")
    assert over.status_code == 429, over.text
    assert f"{QUOTA} tasks are already queued or running for this client address" in over.text
    # Another address has its own quota, and reads the first one's task by its id.
    other = _create(gateway, "203.0.113.2")
    assert other.status_code == 200, other.text
    task_id = first[0].json()["results"]["task_id"]
    status = httpx.get(f"{gateway}/api/v1/tasks/{task_id}/status", timeout=30)
    assert status.status_code == 200 and status.json()["results"]["status"] == "pending"
