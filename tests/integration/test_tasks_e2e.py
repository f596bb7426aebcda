"""The task API end to end through real processes: tasks services on their own databases, each
with a gateway (uvicorn) in front, over the session mesh's storage and tiny Qwen-Image server, and
a providers service pointed at the local DashScope and LiblibAI imitations.

What a client sees: create -> poll -> result, links into our bucket that download as PNGs, the
DashScope SDK itself working against the gateway, a tasks service restarted between create and
poll, one killed twice while running a task, two on one PostgreSQL, expiry of old results, and an
internal client that uses the Tasks gRPC API directly, without the gateway.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from imagemesh.v1 import tasks_pb2, tasks_pb2_grpc
from PIL import Image

from tests.support.mesh import BUCKET, Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.storage import bucket_keys, minio_client
from tests.support.waiting import wait_until

SEED_CREATE = "/api/v1/tasks/"
SYNTHESIS = "/api/v1/services/aigc/text2image/image-synthesis"
LOCAL = {"prompt": "a lighthouse at dusk", "size": "256*256", "n": 1, "seed": 7}


@dataclass
class Gateway:
    """A tasks service and a gateway in front of it (the gateway holds no task state)."""

    tasks: ServiceProcess
    target: str
    process: ServiceProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _healthy(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@pytest.fixture(scope="module")
def providers(provider_fakes: Any) -> Iterator[str]:
    """A providers service whose DashScope and LiblibAI base URLs are the local imitations."""
    target = f"127.0.0.1:{free_port()}"
    env = {"PROVIDERS_LISTEN": target, "PROVIDERS_METRICS_LISTEN": "", **provider_fakes.env()}
    process = ServiceProcess.module(
        "tasks-providers", "services.providers", env=env, ready=lambda: grpc_serving(target)
    ).start()
    yield target
    process.stop()


@pytest.fixture(scope="module")
def start_gateway(mesh: Mesh, providers: str) -> Iterator[Callable[..., Gateway]]:
    """`start(name, database_url, **tasks_settings)`: a tasks service (TASKS_* settings) on that
    database, and a gateway in front of it."""
    started: list[Gateway] = []

    def start(name: str, database_url: str, **settings: str) -> Gateway:
        target = f"127.0.0.1:{free_port()}"
        tasks_env = {
            "TASKS_LISTEN": target,
            "TASKS_METRICS_LISTEN": "",
            "TASKS_DATABASE_URL": database_url,
            "TASKS_QWEN_IMAGE_TARGET": mesh.targets["qwen_image"],
            "TASKS_STORAGE_TARGET": mesh.targets["storage"],
            "TASKS_PROVIDERS_TARGET": providers,
            "TASKS_GENERATE_DEADLINE_SECONDS": "60",
            "TASKS_POLL_SECONDS": "0.1",
            **{f"TASKS_{k.upper()}": v for k, v in settings.items()},
        }
        tasks = ServiceProcess.module(
            f"tasks-{name}",
            "services.tasks",
            env=tasks_env,
            ready=lambda: grpc_serving(target),
            ready_timeout=60,
        ).start()
        port = free_port()
        env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_QWEN_IMAGE_TARGET": mesh.targets["qwen_image"],
            "GATEWAY_QWEN_EDIT_TARGET": mesh.targets["qwen_edit"],
            "GATEWAY_STORAGE_TARGET": mesh.targets["storage"],
            "GATEWAY_PROVIDERS_TARGET": providers,
            "GATEWAY_TASKS_TARGET": target,
            "GATEWAY_STORAGE_LINK_PREFIXES": mesh.link_prefix,
            "GATEWAY_GENERATE_DEADLINE_SECONDS": "60",
        }
        url = f"http://127.0.0.1:{port}"
        process = ServiceProcess.module(
            f"tasks-{name}-gateway",
            "services.gateway",
            env=env,
            ready=_healthy(url),
            ready_timeout=60,
        )
        gateway = Gateway(tasks, target, process.start(), port)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.process.stop()
        gateway.tasks.stop()


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Gateway], tmp_path_factory: pytest.TempPathFactory
) -> Gateway:
    db = tmp_path_factory.mktemp("tasks") / "tasks.db"
    return start_gateway("main", f"sqlite+aiosqlite:///{db}")


def poll(
    client: httpx.Client, path: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = [{}]

    def finished() -> bool:
        seen[0] = client.get(path).json()
        return done(seen[0])

    try:
        wait_until(finished, timeout, path, poll=0.1)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {seen[0]}") from None
    return seen[0]


def completed(body: dict[str, Any]) -> bool:
    return body["results"]["status"] in ("completed", "failed", "canceled")


def png_size(url: str) -> tuple[int, int]:
    download = httpx.get(url, timeout=30)
    assert download.status_code == 200 and download.content[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(download.content)).size


def test_a_local_model_task_from_create_to_result(gateway: Gateway, mesh: Mesh) -> None:
    with gateway.client() as client:
        created = client.post(
            SEED_CREATE, json={"model": "qwen-image", "parameters": LOCAL, "is_async": True}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["results"]["task_id"]
        poll(client, f"/api/v1/tasks/{task_id}/status", completed)
        result = client.get(f"/api/v1/tasks/{task_id}/result").json()["results"]
    assert result["status"] == "completed", result
    (image,) = result["result"]["images"]
    assert image["index"] == 0 and image["seed"] == 7
    assert image["url"].startswith(mesh.link_prefix)
    assert png_size(image["url"]) == (256, 256)
    assert result["result"]["parameters"] == LOCAL


def test_is_async_false_answers_the_result_in_the_same_call(gateway: Gateway) -> None:
    with gateway.client() as client:
        answer = client.post(
            SEED_CREATE, json={"model": "qwen-image", "parameters": LOCAL, "is_async": False}
        )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert results["status"] == "completed" and png_size(results["result"]["images"][0]["url"]) == (
        256,
        256,
    )


def test_a_hosted_wanx_task_through_the_dashscope_async_protocol(
    gateway: Gateway, mesh: Mesh, provider_fakes: Any
) -> None:
    provider_fakes.dashscope.reset()
    with gateway.client() as client:
        created = client.post(
            SYNTHESIS,
            json={
                "model": "wanx2.1-t2i-turbo",
                "input": {"prompt": "a flower shop"},
                "parameters": {"size": "512*512", "n": 2},
            },
            headers={"X-DashScope-Async": "enable", "Authorization": "Bearer sk-anything"},
        )
        assert created.status_code == 200, created.text
        assert created.json()["output"]["task_status"] == "PENDING"
        task_id = created.json()["output"]["task_id"]
        client.headers["Authorization"] = "Bearer sk-anything"
        done = poll(
            client,
            f"/api/v1/tasks/{task_id}",
            lambda b: b["output"]["task_status"] in ("SUCCEEDED", "FAILED"),
        )
    output = done["output"]
    assert output["task_status"] == "SUCCEEDED", output
    assert output["task_metrics"] == {"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0} and done[
        "usage"
    ] == {"image_count": 2}
    # Copied into our bucket: the provider's expiring links are never handed out.
    assert all(r["url"].startswith(mesh.link_prefix) for r in output["results"])
    assert png_size(output["results"][0]["url"]) == (512, 512)


def test_a_hosted_liblib_task_through_seed_001(
    gateway: Gateway, mesh: Mesh, provider_fakes: Any
) -> None:
    provider_fakes.liblib.reset()
    parameters = {
        "prompt": "1 girl, lotus leaf, masterpiece",
        "aspectRatio": "portrait",
        "imgCount": 1,
        "steps": 30,
    }
    with gateway.client() as client:
        created = client.post(
            SEED_CREATE,
            json={"model": "star-3-alpha-t2i", "provider": "liblibai", "parameters": parameters},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["results"]["task_id"]
        poll(client, f"/api/v1/tasks/{task_id}/status", completed)
        result = client.get(f"/api/v1/tasks/{task_id}/result").json()["results"]
    assert result["status"] == "completed", result
    assert result["result"]["images"][0]["url"].startswith(mesh.link_prefix)
    sent = provider_fakes.liblib.received()
    assert any(
        isinstance(r.body, dict)
        and r.body.get("generateParams", {}).get("aspectRatio") == "portrait"
        for r in sent
    )


def test_the_dashscope_sdk_works_against_the_gateway(gateway: Gateway, provider_fakes: Any) -> None:
    """A DashScope client changes only its base URL."""
    import dashscope
    from dashscope import ImageSynthesis

    provider_fakes.dashscope.reset()
    dashscope.base_http_api_url = f"{gateway.url}/api/v1"
    created = ImageSynthesis.async_call(
        model="wanx2.1-t2i-turbo", prompt="a red panda", n=1, size="512*512", api_key="sk-anything"
    )
    assert created.status_code == 200, created
    assert created.output.task_status == "PENDING"
    done = ImageSynthesis.wait(created, api_key="sk-anything")
    assert done.status_code == 200 and done.output.task_status == "SUCCEEDED", done
    assert png_size(done.output.results[0].url) == (512, 512)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "dall-e-9", "parameters": {"prompt": "x"}}, 404, "models for tasks: qwen-image"),
        (
            {"model": "qwen-image", "parameters": {"prompt": "x", "size": "abc"}},
            400,
            "parameters.size",
        ),
        (
            {"model": "qwen-image", "parameters": {"prompt": "x", "width": 100, "height": 256}},
            400,
            "multiple of 16",
        ),
        ({"model": "qwen-image", "parameters": {"prompt": "x", "n": 99}}, 400, "parameters.n"),
        (
            {"model": "qwen-image", "parameters": {"size": "256*256"}},
            400,
            "parameters.prompt is required",
        ),
        (
            {"model": "wanx2.1-t2i-turbo", "provider": "liblibai", "parameters": {"prompt": "x"}},
            400,
            "served by dashscope",
        ),
        ({"model": "qwen-image-edit", "parameters": {"prompt": "x"}}, 400, "/v1/images/edits"),
    ],
)
def test_bad_requests_are_refused_at_create_time(
    gateway: Gateway, body: dict[str, Any], status: int, says: str
) -> None:
    with gateway.client() as client:
        answer = client.post(SEED_CREATE, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == status and says in answer.json()["message"]


def test_bad_task_ids_answer_404(gateway: Gateway) -> None:
    with gateway.client() as client:
        for path in (
            "/api/v1/tasks/nope/status",
            "/api/v1/tasks/nope/result",
            "/api/v1/tasks/0b5d4b7e-5f58-4a57-9b5e-3f2c39b0e6a1/result",
        ):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json()["code"] == 404
        assert client.get("/api/v1/tasks/nope").json()["output"]["task_status"] == "UNKNOWN"


def test_the_sync_dashscope_endpoint_answers_like_dashscope(gateway: Gateway, mesh: Mesh) -> None:
    body = {
        "model": "qwen-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "a couplet in a hall"}]}]},
        "parameters": {"size": "256*256", "seed": 3},
    }
    with gateway.client() as client:
        answer = client.post("/api/v1/services/aigc/multimodal-generation/generation", json=body)
        unknown = client.post(
            "/api/v1/services/aigc/multimodal-generation/generation", json={**body, "model": "nope"}
        )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert set(data) == {"output", "usage", "request_id"}
    image_url = data["output"]["choices"][0]["message"]["content"][0]["image"]
    assert image_url.startswith(mesh.link_prefix) and png_size(image_url) == (256, 256)
    assert data["usage"] == {"width": 256, "height": 256, "image_count": 1}
    assert unknown.status_code == 404 and set(unknown.json()) == {"request_id", "code", "message"}


def test_a_tasks_service_restart_between_create_and_poll_loses_no_task(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    # No workers: the tasks are queued, and stay so, until the tasks service dies.
    first = start_gateway("restart-a", db, workers="0")
    with first.client() as client:
        ids = [
            client.post(SEED_CREATE, json={"model": "qwen-image", "parameters": LOCAL}).json()[
                "results"
            ]["task_id"]
            for _ in range(2)
        ]
        assert {
            client.get(f"/api/v1/tasks/{i}/status").json()["results"]["status"] for i in ids
        } == {"pending"}
    first.tasks.kill()

    second = start_gateway("restart-b", db)
    with second.client() as client:
        for task_id in ids:
            poll(client, f"/api/v1/tasks/{task_id}/status", completed)
            assert (
                client.get(f"/api/v1/tasks/{task_id}/result").json()["results"]["status"]
                == "completed"
            )


def test_a_task_whose_tasks_service_dies_twice_is_retried_once_then_failed(
    start_gateway: Callable[..., Gateway], provider_fakes: Any, tmp_path: Path
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'dies.db'}"
    provider_fakes.dashscope.reset()
    provider_fakes.dashscope.running_polls = 10_000  # the hosted job never ends: the task runs on
    lease = {"lease_seconds": "1", "generate_deadline_seconds": "300"}
    try:
        first = start_gateway("dies-1", db, **lease)
        with first.client() as client:
            created = client.post(
                SEED_CREATE,
                json={"model": "wanx2.1-t2i-turbo", "parameters": {"prompt": "x", "n": 1}},
            )
            task_id = created.json()["results"]["task_id"]
            poll(
                client,
                f"/api/v1/tasks/{task_id}/status",
                lambda b: b["results"]["status"] == "running",
            )
        first.tasks.kill()

        second = start_gateway("dies-2", db, **lease)
        with second.client() as client:
            again = poll(
                client,
                f"/api/v1/tasks/{task_id}/status",
                lambda b: b["results"]["attempts"] == 2,
                timeout=30,
            )
            assert again["results"]["status"] == "running"
        second.tasks.kill()

        third = start_gateway("dies-3", db, **lease)
        with third.client() as client:
            failed = poll(client, f"/api/v1/tasks/{task_id}/status", completed, timeout=30)[
                "results"
            ]
            polled = client.get(f"/api/v1/tasks/{task_id}").json()["output"]
    finally:
        provider_fakes.dashscope.reset()
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "worker died twice while running this task"
    assert (polled["task_status"], polled["message"]) == (
        "FAILED",
        "worker died twice while running this task",
    )


def test_cancel_stops_a_running_hosted_task(gateway: Gateway, provider_fakes: Any) -> None:
    provider_fakes.dashscope.reset()
    provider_fakes.dashscope.running_polls = 10_000
    try:
        with gateway.client() as client:
            task_id = client.post(
                SEED_CREATE,
                json={"model": "wanx2.1-t2i-turbo", "parameters": {"prompt": "x", "n": 1}},
            ).json()["results"]["task_id"]
            poll(
                client,
                f"/api/v1/tasks/{task_id}/status",
                lambda b: b["results"]["status"] == "running",
            )
            canceled = client.post(f"/api/v1/tasks/{task_id}/cancel")
            assert (
                canceled.status_code == 200 and canceled.json()["results"]["status"] == "canceled"
            )
            assert (
                client.get(f"/api/v1/tasks/{task_id}").json()["output"]["task_status"] == "CANCELED"
            )
            # The worker is free again: the next task runs to the end.
            provider_fakes.dashscope.running_polls = 1
            next_id = client.post(
                SEED_CREATE, json={"model": "qwen-image", "parameters": LOCAL}
            ).json()["results"]["task_id"]
            assert (
                poll(client, f"/api/v1/tasks/{next_id}/status", completed)["results"]["status"]
                == "completed"
            )
    finally:
        provider_fakes.dashscope.reset()


def test_two_tasks_services_on_one_postgresql_run_each_task_once(
    start_gateway: Callable[..., Gateway], postgres_server: Any, mesh: Mesh, s3_server: Any
) -> None:
    db = postgres_server.create_database()
    gateways = [start_gateway(f"pg-{i}", db, workers="2") for i in range(2)]
    request_ids = [f"pgtask{i:02d}x{time.monotonic_ns()}" for i in range(10)]
    parameters = {**LOCAL, "size": "128*128"}
    task_ids = []
    for i, rid in enumerate(request_ids):
        with gateways[i % 2].client() as client:
            created = client.post(
                SEED_CREATE,
                json={"model": "qwen-image", "parameters": parameters},
                headers={"X-Request-ID": rid},
            )
            task_ids.append(created.json()["results"]["task_id"])
    with gateways[0].client() as client:
        results = [
            poll(client, f"/api/v1/tasks/{t}/status", completed)["results"] for t in task_ids
        ]
    assert {r["status"] for r in results} == {"completed"} and {r["attempts"] for r in results} == {
        1
    }
    # Each run uploads one object named after the task's request id: one object per task.
    keys = bucket_keys(minio_client(s3_server), BUCKET)
    assert [sum(f"/{rid}-" in key for key in keys) for rid in request_ids] == [1] * len(request_ids)


def test_old_results_are_deleted_with_their_images(
    start_gateway: Callable[..., Gateway], s3_server: Any, tmp_path: Path
) -> None:
    gateway = start_gateway(
        "retention",
        f"sqlite+aiosqlite:///{tmp_path / 'ret.db'}",
        retention_seconds="1",
        retention_sweep_seconds="0.2",
    )
    rid = f"retention{time.monotonic_ns()}"
    s3 = minio_client(s3_server)
    with gateway.client() as client:
        task_id = client.post(
            SEED_CREATE,
            json={"model": "qwen-image", "parameters": LOCAL},
            headers={"X-Request-ID": rid},
        ).json()["results"]["task_id"]
        poll(client, f"/api/v1/tasks/{task_id}/status", completed)
        assert any(f"/{rid}-" in k for k in bucket_keys(s3, BUCKET))
        wait_until(
            lambda: not any(f"/{rid}-" in k for k in bucket_keys(s3, BUCKET)), 30, "image deletion"
        )
        # The sweep deletes the images first, then the row: the row goes a moment later.
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}/result").status_code == 404,
            30,
            "the task's deletion",
        )
        assert client.get(f"/api/v1/tasks/{task_id}").json()["output"]["task_status"] == "UNKNOWN"


async def test_an_internal_client_creates_a_task_over_grpc_and_sees_it_finish(
    gateway: Gateway, mesh: Mesh
) -> None:
    """No gateway: the generated stubs against the tasks service, as any internal service."""
    spec = tasks_pb2.TaskSpec(
        model="qwen-image",
        backend=tasks_pb2.TASK_BACKEND_QWEN_IMAGE,
        prompt="a lighthouse at dawn",
        width=256,
        height=256,
        n=1,
        seed=11,
    )
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = tasks_pb2_grpc.TasksStub(channel)
        created = await stub.CreateTask(
            tasks_pb2.CreateTaskRequest(spec=spec, owner="batch-job", api="internal"), timeout=10
        )
        assert created.status == tasks_pb2.TASK_STATUS_QUEUED and created.api == "internal"
        watch = stub.WatchTask(
            tasks_pb2.WatchTaskRequest(task_id=created.id, owner="batch-job"), timeout=90
        )
        events = [event.task async for event in watch]
        listed = await stub.ListTasks(tasks_pb2.ListTasksRequest(owner="batch-job"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as other_owner:
            await stub.GetTask(
                tasks_pb2.GetTaskRequest(task_id=created.id, owner="someone-else"), timeout=10
            )
        with pytest.raises(grpc.aio.AioRpcError) as finished:
            await stub.CancelTask(
                tasks_pb2.CancelTaskRequest(task_id=created.id, owner="batch-job"), timeout=10
            )
    done = events[-1]
    assert done.status == tasks_pb2.TASK_STATUS_SUCCEEDED, done
    assert [e.status for e in events[:-1]] == sorted(e.status for e in events[:-1])
    (image,) = done.images
    assert image.seed == 11 and image.url.startswith(mesh.link_prefix)
    assert png_size(image.url) == (256, 256)
    assert [t.id for t in listed.tasks] == [created.id]
    assert other_owner.value.code() == grpc.StatusCode.NOT_FOUND
    assert finished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already finished (succeeded)" in (finished.value.details() or "")
    assert ("imagemesh-reason", "task-finished") in tuple(finished.value.trailing_metadata() or ())
