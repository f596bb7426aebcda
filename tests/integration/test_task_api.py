"""The task routes over HTTP (seed 001's API and DashScope's async protocol), on a real queue.

The app here is the task router behind the gateway's own middleware and error handlers, a thin
client of a real tasks service (gRPC on port 0, SQLite) whose runner makes no images (it answers
links at once); the real runner, model server and providers are exercised end to end in
tests/integration/test_tasks_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.errors import FailedPrecondition
from services.gateway import errors
from services.gateway.catalog import Catalog
from services.gateway.clients import Backends
from services.gateway.middleware import ApiKeys, RequestContext
from services.gateway.settings import DEFAULT_CATALOG, GatewaySettings
from services.gateway.sources import ImageSources
from services.gateway.tasks.client import TasksClient
from services.gateway.tasks.prepare import TaskPreparer
from services.gateway.tasks.router import router
from services.tasks.records import TaskImage, TaskOutput, TaskRecord
from services.tasks.service import RunningTasks, start
from services.tasks.settings import TasksSettings
from tests.support.waiting import eventually

UNKNOWN_ID = "0b5d4b7e-5f58-4a57-9b5e-3f2c39b0e6a1"


class Runner:
    """Runs a task by answering links at once; `gate` (when set) holds every run."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.started: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, task: TaskRecord) -> TaskOutput:
        self.started.put_nowait(task.id)
        if self.gate is not None:
            await self.gate.wait()
        n = int(task.spec.get("n", 1))
        images = [
            TaskImage(
                index=i,
                url=f"http://127.0.0.1:9000/imagemesh/{task.id}-{i}.png",
                key=f"k/{task.id}-{i}.png",
                seed=40 + i,
                width=256,
                height=256,
            )
            for i in range(n)
        ]
        return TaskOutput(images, requested=n)


@pytest.fixture
async def backend() -> Runner:
    return Runner()


@pytest.fixture
async def service(tmp_path: Path, backend: Runner) -> AsyncIterator[RunningTasks]:
    settings = TasksSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
        workers=2,
        poll_seconds=0.05,
        max_pending_per_key=3,
        shutdown_grace_seconds=0,
    )
    running = await start(settings, runner=backend)
    yield running
    await running.close(0)


def build(service: RunningTasks, keys: list[str] | None = None) -> FastAPI:
    settings = GatewaySettings(tasks_target=service.address, task_sync_wait_seconds=30)
    catalog = Catalog.load(DEFAULT_CATALOG)
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.add_middleware(ApiKeys, keys=keys or [])
    app.add_middleware(RequestContext)
    app.state.backends = Backends(settings)
    app.state.tasks = TasksClient(
        settings,
        app.state.backends,
        TaskPreparer(settings, catalog),
        ImageSources(settings, app.state.backends),
    )
    return app


@pytest.fixture
async def client(service: RunningTasks) -> AsyncIterator[httpx.AsyncClient]:
    app = build(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await app.state.backends.close()


async def poll(
    client: httpx.AsyncClient, path: str, done: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = [{}]

    async def finished() -> bool:
        seen[0] = (await client.get(path, headers=headers)).json()
        return bool(done(seen[0]))

    try:
        await eventually(finished, 30, f"{path} finished")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {seen[0]}") from None
    return seen[0]


async def test_seed_create_then_status_then_result(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/tasks/",
        json={
            "model": "wanx2.1-t2i-turbo",
            "provider": "aliyun",
            "parameters": {"prompt": "a cat", "size": "1024*1024", "n": 2},
            "is_async": True,
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["code"], body["message"], body["success"]) == (0, "success", True)
    assert body["request_id"] == created.headers["x-request-id"]
    task_id = body["results"]["task_id"]
    assert body["results"]["status"] in ("pending", "running", "completed")

    status = await poll(
        client, f"/api/v1/tasks/{task_id}/status", lambda b: b["results"]["status"] == "completed"
    )
    assert status["results"]["error"] is None and status["results"]["model"] == "wanx2.1-t2i-turbo"
    result = (await client.get(f"/api/v1/tasks/{task_id}/result")).json()
    assert result["code"] == 0 and result["results"]["status"] == "completed"
    images = result["results"]["result"]["images"]
    assert [(i["index"], i["seed"]) for i in images] == [(0, 40), (1, 41)]
    assert all(i["url"].startswith("http://127.0.0.1:9000/imagemesh/") for i in images)
    assert result["results"]["result"]["parameters"] == {
        "prompt": "a cat",
        "size": "1024*1024",
        "n": 2,
    }
    assert result["results"]["result"]["prompt"] == "a cat"


async def test_is_async_false_waits_and_answers_the_result(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/v1/tasks/",
        json={"model": "qwen-image", "parameters": {"prompt": "a dog"}, "is_async": False},
    )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert results["status"] == "completed" and len(results["result"]["images"]) == 1


async def test_a_result_asked_before_completion_says_so(
    client: httpx.AsyncClient, backend: Runner
) -> None:
    backend.gate = asyncio.Event()
    task_id = (
        await client.post(
            "/api/v1/tasks", json={"model": "qwen-image", "parameters": {"prompt": "x"}}
        )
    ).json()["results"]["task_id"]
    await asyncio.wait_for(backend.started.get(), 10)
    early = (await client.get(f"/api/v1/tasks/{task_id}/result")).json()["results"]
    assert (early["status"], early["result"], early["error"]) == ("running", None, None)
    backend.gate.set()
    await poll(
        client, f"/api/v1/tasks/{task_id}/result", lambda b: b["results"]["status"] == "completed"
    )


@pytest.mark.parametrize("suffix", ["/status", "/result"])
@pytest.mark.parametrize("task_id", [UNKNOWN_ID, "not-a-task-id", "%20"])
async def test_bad_task_ids_answer_a_404_envelope(
    client: httpx.AsyncClient, task_id: str, suffix: str
) -> None:
    answer = await client.get(f"/api/v1/tasks/{task_id}{suffix}")
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == 404 and "does not exist" in body["message"] and body["request_id"]


async def test_cancel_of_an_unknown_task_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    answer = await client.post(f"/api/v1/tasks/{UNKNOWN_ID}/cancel")
    assert answer.status_code == 404 and answer.json()["code"] == 404


async def test_unknown_models_and_bad_parameters_are_refused_at_create_time(
    client: httpx.AsyncClient, service: RunningTasks
) -> None:
    unknown = await client.post(
        "/api/v1/tasks/", json={"model": "dall-e-9", "parameters": {"prompt": "x"}}
    )
    assert unknown.status_code == 404
    assert "qwen-image" in unknown.json()["message"] and unknown.json()["error"]["param"] == "model"
    no_prompt = await client.post("/api/v1/tasks/", json={"model": "qwen-image", "parameters": {}})
    assert no_prompt.status_code == 400 and "parameters.prompt" in no_prompt.json()["message"]
    no_model = await client.post("/api/v1/tasks/", json={"parameters": {"prompt": "x"}})
    assert no_model.status_code == 400 and "model is required" in no_model.json()["message"]
    not_json = await client.post(
        "/api/v1/tasks/", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    assert await service.service.store.count() == 0  # nothing was queued


async def test_cancel_stops_a_running_task(client: httpx.AsyncClient, backend: Runner) -> None:
    backend.gate = asyncio.Event()  # never opened: the task runs until canceled
    task_id = (
        await client.post(
            "/api/v1/tasks/", json={"model": "qwen-image", "parameters": {"prompt": "x"}}
        )
    ).json()["results"]["task_id"]
    await asyncio.wait_for(backend.started.get(), 10)

    canceled = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["results"]["status"] == "canceled"
    status = (await client.get(f"/api/v1/tasks/{task_id}/status")).json()["results"]
    assert status["status"] == "canceled" and status["error"]["code"] == "Canceled"
    again = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 200  # canceling twice is harmless


async def test_a_finished_task_cannot_be_canceled(client: httpx.AsyncClient) -> None:
    done = await client.post(
        "/api/v1/tasks/",
        json={"model": "qwen-image", "parameters": {"prompt": "x"}, "is_async": False},
    )
    task_id = done.json()["results"]["task_id"]
    answer = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert answer.status_code == 400
    assert "already finished (succeeded)" in answer.json()["message"]


async def test_the_queued_task_cap_per_key_answers_429(
    client: httpx.AsyncClient, backend: Runner
) -> None:
    backend.gate = asyncio.Event()
    alice = {"Authorization": "Bearer sk-alice"}
    for _ in range(3):
        ok = await client.post(
            "/api/v1/tasks/",
            json={"model": "qwen-image", "parameters": {"prompt": "x"}},
            headers=alice,
        )
        assert ok.status_code == 200
    refused = await client.post(
        "/api/v1/tasks/", json={"model": "qwen-image", "parameters": {"prompt": "x"}}, headers=alice
    )
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert "3 tasks are already queued or running" in refused.json()["message"]
    bob = await client.post(
        "/api/v1/tasks/",
        json={"model": "qwen-image", "parameters": {"prompt": "x"}},
        headers={"Authorization": "Bearer sk-bob"},
    )
    assert bob.status_code == 200
    dashscope = await client.post(
        "/api/v1/services/aigc/text2image/image-synthesis",
        json={"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}},
        headers={**alice, "X-DashScope-Async": "enable"},
    )
    assert dashscope.status_code == 429 and dashscope.json()["code"] == "Throttling"
    backend.gate.set()


async def test_a_task_is_visible_only_to_the_key_that_made_it(client: httpx.AsyncClient) -> None:
    task_id = (
        await client.post(
            "/api/v1/tasks/",
            json={"model": "qwen-image", "parameters": {"prompt": "x"}},
            headers={"Authorization": "Bearer sk-alice"},
        )
    ).json()["results"]["task_id"]
    assert (
        await client.get(
            f"/api/v1/tasks/{task_id}/status", headers={"Authorization": "Bearer sk-alice"}
        )
    ).status_code == 200
    assert (
        await client.get(
            f"/api/v1/tasks/{task_id}/status", headers={"Authorization": "Bearer sk-eve"}
        )
    ).status_code == 404
    assert (await client.get(f"/api/v1/tasks/{task_id}/status")).status_code == 404


async def test_dashscope_async_create_and_poll(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer sk-test", "X-DashScope-Async": "enable"}
    created = await client.post(
        "/api/v1/services/aigc/text2image/image-synthesis",
        json={
            "model": "wanx2.1-t2i-turbo",
            "input": {"prompt": "a flower shop", "negative_prompt": "blurry"},
            "parameters": {"size": "1024*1024", "n": 2, "seed": 42},
        },
        headers=headers,
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"output", "request_id"}
    assert body["output"]["task_status"] == "PENDING"
    task_id = body["output"]["task_id"]

    poll_headers = {"Authorization": "Bearer sk-test"}
    done = await poll(
        client,
        f"/api/v1/tasks/{task_id}",
        lambda b: b["output"]["task_status"] == "SUCCEEDED",
        poll_headers,
    )
    output = done["output"]
    assert output["task_id"] == task_id and done["request_id"]
    assert [r["url"].startswith("http://127.0.0.1:9000/imagemesh/") for r in output["results"]] == [
        True,
        True,
    ]
    assert output["results"][0]["orig_prompt"] == "a flower shop"
    assert output["task_metrics"] == {"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0}
    assert done["usage"] == {"image_count": 2}
    for field in ("submit_time", "scheduled_time", "end_time"):
        assert len(output[field]) == len("2025-01-08 16:03:59.840")
    # The same task through seed 001's API: every API reads every task.
    seed = (await client.get(f"/api/v1/tasks/{task_id}/result", headers=poll_headers)).json()
    assert seed["results"]["result"]["parameters"]["negative_prompt"] == "blurry"


async def test_dashscope_answers_its_own_error_shapes(client: httpx.AsyncClient) -> None:
    path = "/api/v1/services/aigc/text2image/image-synthesis"
    sync = await client.post(path, json={"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}})
    assert sync.status_code == 403 and sync.json()["code"] == "AccessDenied"
    assert "synchronous" in sync.json()["message"]
    headers = {"X-DashScope-Async": "enable"}
    unknown = await client.post(
        path, json={"model": "nope", "input": {"prompt": "x"}}, headers=headers
    )
    assert unknown.status_code == 404
    assert (
        set(unknown.json()) == {"request_id", "code", "message"}
        and unknown.json()["code"] == "ModelNotFound"
    )
    no_input = await client.post(path, json={"model": "wanx2.1-t2i-turbo"}, headers=headers)
    assert no_input.status_code == 400 and no_input.json()["code"] == "BadRequest.EmptyInput"
    no_model = await client.post(path, json={"input": {"prompt": "x"}}, headers=headers)
    assert no_model.json()["code"] == "BadRequest.EmptyModel"
    no_prompt = await client.post(
        path, json={"model": "wanx2.1-t2i-turbo", "input": {"text": "x"}}, headers=headers
    )
    assert no_prompt.status_code == 400 and no_prompt.json()["code"] == "InvalidParameter"
    assert "input.prompt" in no_prompt.json()["message"]
    missing = (await client.get(f"/api/v1/tasks/{UNKNOWN_ID}")).json()
    assert missing["output"] == {"task_id": UNKNOWN_ID, "task_status": "UNKNOWN"}


async def test_a_failed_task_polls_as_failed_with_code_and_message(
    client: httpx.AsyncClient, service: RunningTasks
) -> None:
    async def broken(task: TaskRecord) -> TaskOutput:
        # What the providers service answers for a hosted model without its key.
        raise FailedPrecondition("wanx2.1-t2i-turbo cannot serve this now: set DASHSCOPE_API_KEY")

    service.service.worker.runner = broken
    created = await client.post(
        "/api/v1/services/aigc/text2image/image-synthesis",
        json={"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1}},
        headers={"X-DashScope-Async": "enable"},
    )
    task_id = created.json()["output"]["task_id"]
    done = await poll(
        client, f"/api/v1/tasks/{task_id}", lambda b: b["output"]["task_status"] == "FAILED"
    )
    assert done["output"]["code"] == "ServiceUnavailable"
    assert "DASHSCOPE_API_KEY" in done["output"]["message"]
    assert done["output"]["task_metrics"] == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 1}
    seed = (await client.get(f"/api/v1/tasks/{task_id}/status")).json()["results"]
    assert seed["status"] == "failed" and "DASHSCOPE_API_KEY" in seed["error"]["message"]


async def test_with_api_keys_configured_a_missing_key_is_refused(service: RunningTasks) -> None:
    app = build(service, keys=["sk-good"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        refused = await client.post(
            "/api/v1/tasks/", json={"model": "qwen-image", "parameters": {"prompt": "x"}}
        )
        assert refused.status_code == 401
        ok = await client.post(
            "/api/v1/tasks/",
            json={"model": "qwen-image", "parameters": {"prompt": "x"}},
            headers={"Authorization": "Bearer sk-good"},
        )
        assert ok.status_code == 200
    await app.state.backends.close()


async def test_is_async_false_survives_a_tasks_replica_going_away(tmp_path: Path) -> None:
    """The wait follows the task across replicas: the one running it stops (the task goes back
    to the queue), another on the same database runs it, and the client gets the result."""
    settings = TasksSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
        workers=1,
        poll_seconds=0.05,
        worker_grace_seconds=0,
    )
    held = Runner()
    held.gate = asyncio.Event()  # never opened: this replica never finishes the task
    first = await start(settings, runner=held)
    app = build(first)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = asyncio.create_task(
            client.post(
                "/api/v1/tasks/",
                json={"model": "qwen-image", "parameters": {"prompt": "x"}, "is_async": False},
            )
        )
        task_id = await asyncio.wait_for(held.started.get(), 10)
        await first.close(0)
        second = await start(settings.model_copy(update={"listen": first.address}), Runner())
        try:
            done = await asyncio.wait_for(answer, 30)
        finally:
            await second.close(0)
    await app.state.backends.close()
    assert done.status_code == 200, done.text
    results = done.json()["results"]
    assert results["task_id"] == task_id and results["status"] == "completed"
    assert len(results["result"]["images"]) == 1
