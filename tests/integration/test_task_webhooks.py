"""Webhooks for ended tasks: a local receiver gets one signed event per task, retried after a 500,
the same event id on every attempt, and still delivered by a new process after a restart.

The gateway's task routes over a real tasks service (gRPC on port 0, SQLite) whose runner makes
no images, as in test_task_api.py; the receiver is a real HTTP server on loopback (allowed by
TASKS_WEBHOOK_ALLOW_NETWORKS, as internal addresses are refused otherwise).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.tasks.outbox import Outbox
from services.tasks.service import RunningTasks, start
from services.tasks.settings import TasksSettings
from tests.integration.test_task_api import Runner, build, poll
from tests.support.waiting import eventually

SECRETS = ["whsec_new", "whsec_old"]  # mid-rotation: every event is signed with both


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status in `answers` (then 200), recording what came."""

    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> int:
        return self.answers.pop(0) if self.answers else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.answer())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/imagemesh"
    yield state
    server.shutdown()
    server.server_close()


def settings_for(tmp_path: Path, **overrides: Any) -> TasksSettings:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "metrics_listen": "",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
        "workers": 2,
        "poll_seconds": 0.05,
        "shutdown_grace_seconds": 0,
        "webhook_secret": ",".join(SECRETS),
        "webhook_allow_networks": [ipaddress.ip_network("127.0.0.0/8")],
        "webhook_backoff_seconds": 0.05,
        "webhook_max_backoff_seconds": 0.2,
    }
    return TasksSettings(**{**values, **overrides})


@pytest.fixture
async def backend() -> Runner:
    return Runner()


@pytest.fixture
async def service(tmp_path: Path, backend: Runner) -> AsyncIterator[RunningTasks]:
    running = await start(settings_for(tmp_path), runner=backend)
    yield running
    await running.close(0)


@pytest.fixture
async def client(service: RunningTasks) -> AsyncIterator[httpx.AsyncClient]:
    app = build(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await app.state.backends.close()


def verify(received: Received, secret: str) -> bool:
    """What a receiver does (Stripe's scheme): recompute the HMAC of "<t>.<body>" and compare it
    with every v1 entry, and refuse an old timestamp."""
    parts = [part.split("=", 1) for part in received.headers["x-imagemesh-signature"].split(",")]
    timestamps = [value for key, value in parts if key == "t"]
    signatures = [value for key, value in parts if key == "v1"]
    if len(timestamps) != 1 or abs(time.time() - int(timestamps[0])) > 300:
        return False
    expected = hmac.new(
        secret.encode(), timestamps[0].encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, value) for value in signatures)


async def received_at_least(receiver: Receiver, count: int) -> list[Received]:
    await eventually(lambda: len(receiver.received) >= count, 30, f"{count} webhook POSTs")
    return receiver.received


async def test_a_finished_task_posts_one_signed_event_retried_after_a_500(
    client: httpx.AsyncClient, receiver: Receiver, service: RunningTasks
) -> None:
    receiver.answers = [500]
    created = await client.post(
        "/api/v1/tasks/",
        json={
            "model": "qwen-image",
            "parameters": {"prompt": "a lighthouse", "size": "256*256", "n": 2},
            "callback_url": receiver.url,
        },
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["results"]["task_id"]
    first, second = await received_at_least(receiver, 2)
    # The retry is the same event: same id and bytes, signed again.
    assert first.headers["x-imagemesh-event-id"] == second.headers["x-imagemesh-event-id"]
    assert first.body == second.body
    for secret in SECRETS:
        assert verify(second, secret)
    assert not verify(second, "whsec_someone_else")
    tampered = Received(second.headers, second.body.replace(b"succeeded", b"failed"))
    assert not verify(tampered, SECRETS[0])
    event = json.loads(second.body)
    assert event["id"] == second.headers["x-imagemesh-event-id"]
    assert event["type"] == "task.succeeded"
    assert event["data"]["task_id"] == task_id
    assert event["data"]["status"] == "succeeded"
    result = await poll(
        client,
        f"/api/v1/tasks/{task_id}/result",
        lambda b: b["results"]["status"] == "completed",
    )
    links = [image["url"] for image in result["results"]["result"]["images"]]
    assert [image["url"] for image in event["data"]["images"]] == links and len(links) == 2
    assert second.headers["content-type"] == "application/json"
    outbox = Outbox(service.service.store.engine)
    await eventually(
        lambda: _state(outbox, task_id, "delivered"), 10, "the outbox marks it delivered"
    )
    await asyncio.sleep(0.3)  # several poll intervals: a delivered event is not sent again
    assert len(receiver.received) == 2


async def _state(outbox: Outbox, task_id: str, state: str) -> bool:
    row = await outbox.state_of(task_id)
    return row is not None and row[0] == state


async def test_a_canceled_dashscope_task_posts_its_event(
    client: httpx.AsyncClient, receiver: Receiver, backend: Runner, service: RunningTasks
) -> None:
    backend.gate = asyncio.Event()
    created = await client.post(
        "/api/v1/services/aigc/text2image/image-synthesis",
        headers={"X-DashScope-Async": "enable"},
        json={
            "model": "qwen-image",
            "input": {"prompt": "a flower shop"},
            "parameters": {"size": "256*256", "callback_url": receiver.url},
        },
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["output"]["task_id"]
    await asyncio.wait_for(backend.started.get(), 10)
    assert (await client.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200
    (received,) = await received_at_least(receiver, 1)
    event = json.loads(received.body)
    assert (event["type"], event["data"]["status"]) == ("task.canceled", "canceled")
    assert event["data"]["error_code"]
    assert verify(received, SECRETS[1])
    stored = await service.service.store.get(task_id)
    assert stored is not None
    # No model knob: not shown back as a parameter, never sent to a backend.
    assert "callback_url" not in stored.parameters
    assert "callback_url" not in json.dumps(stored.spec)


async def test_an_event_survives_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [503] * 1000
    first = await start(settings_for(tmp_path), runner=Runner())
    app = build(first)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        created = await client.post(
            "/api/v1/tasks/",
            json={
                "model": "qwen-image",
                "parameters": {"prompt": "a kite", "size": "256*256"},
                "callback_url": receiver.url,
            },
        )
        task_id = created.json()["results"]["task_id"]
        await received_at_least(receiver, 2)
    await app.state.backends.close()
    await first.close(0)
    event_id = receiver.received[0].headers["x-imagemesh-event-id"]
    receiver.answers = []
    seen = len(receiver.received)
    second = await start(settings_for(tmp_path), runner=Runner())
    try:
        await received_at_least(receiver, seen + 1)
        last = receiver.received[-1]
        assert last.headers["x-imagemesh-event-id"] == event_id
        assert json.loads(last.body)["data"]["task_id"] == task_id
        outbox = Outbox(second.service.store.engine)
        await eventually(lambda: _state(outbox, task_id, "delivered"), 10, "delivered")
    finally:
        await second.close(0)


async def test_a_callback_given_up_after_its_retry_time(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [500] * 1000
    running = await start(settings_for(tmp_path, webhook_retry_seconds=0.5), runner=Runner())
    try:
        from services.tasks.records import NewTask

        task = await running.service.create(
            NewTask(
                model="qwen-image",
                parameters={"prompt": "x"},
                spec={"prompt": "x", "n": 1},
                callback_url=receiver.url,
            )
        )
        outbox = Outbox(running.service.store.engine)
        await eventually(lambda: _state(outbox, task.id, "gave_up"), 30, "given up")
        row = await outbox.state_of(task.id)
        assert row is not None and row[1] >= 2 and "HTTP 500" in (row[2] or "")
        count = len(receiver.received)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == count
    finally:
        await running.close(0)


@pytest.mark.parametrize(
    ("url", "overrides", "fragment"),
    [
        ("http://10.0.0.7/hook", {}, "10.0.0.7 is a private address"),
        ("ftp://example.com/hook", {}, "scheme 'ftp' is not allowed"),
        ("https://example.com/hook", {"webhook_secret": ""}, "webhooks are off on this server"),
    ],
)
async def test_a_callback_that_cannot_work_is_refused_at_create_time(
    tmp_path: Path, url: str, overrides: dict[str, Any], fragment: str
) -> None:
    running = await start(settings_for(tmp_path, **overrides), runner=Runner())
    app = build(running)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            answer = await client.post(
                "/api/v1/tasks/",
                json={
                    "model": "qwen-image",
                    "parameters": {"prompt": "a kite", "size": "256*256"},
                    "callback_url": url,
                },
            )
        assert answer.status_code == 400, answer.text
        assert fragment in answer.json()["message"]
        assert "callback_url" in answer.json()["message"]
    finally:
        await app.state.backends.close()
        await running.close(0)
