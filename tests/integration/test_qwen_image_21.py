"""Qwen-Image 2.1 (`qwen-image-2.1`) through the gateway, on the tiny 2.1 pipeline: a qwen_image
server of its own pointed at `models/qwen-image-2.1-tiny` (the model index names
`QwenImage21Pipeline`, no code picks it), reached through the catalogue's `server:` and
GATEWAY_MODEL_SERVERS. Generations answer PNGs of the asked size, an edit with one image answers
a picture of the image's size, and the knobs 2.1 does not take answer 400 naming it. Tasks for
2.1 and Turbo run on their own servers too (a tasks service with TASKS_MODEL_SERVERS), and a
tasks service without it refuses them naming the model.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from imagemesh.v1 import tasks_pb2, tasks_pb2_grpc
from PIL import Image

from services.modelserver.settings import MODELS_DIR, TINY_IMAGE_21_DIR, TINY_IMAGE_21_TURBO_DIR
from services.tinymodels import qwen_image_21
from tests.support import sse
from tests.support.mesh import Mesh
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.tiny_models import lora_folder
from tests.support.waiting import wait_until

FAST = {"num_inference_steps": 2, "seed": 7, "response_format": "b64_json"}


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def picture(item: dict[str, str]) -> Image.Image:
    data = base64.b64decode(item["b64_json"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


@pytest.fixture(scope="module")
def gateway(mesh: Mesh) -> Iterator[str]:
    """The base URL of a gateway over the mesh whose `qwen-image-2.1` server is a 2.1 one and
    whose `qwen-image-2.1-turbo` server a Turbo one."""
    qwen_image_21.build(MODELS_DIR)
    qwen_image_21.build_turbo(MODELS_DIR)
    targets, servers = {}, []
    for name, folder in (
        ("qwen-image-2.1", TINY_IMAGE_21_DIR),
        ("qwen-image-2.1-turbo", TINY_IMAGE_21_TURBO_DIR),
    ):
        target = targets[name] = f"127.0.0.1:{free_port()}"
        server = ServiceProcess.module(
            name,
            "services.qwen_image",
            env={
                "QWEN_IMAGE_LISTEN": target,
                "QWEN_IMAGE_METRICS_LISTEN": "",
                "QWEN_IMAGE_LOCATION": str(folder),
                # Not Turbo's: its requests without steps take its own grid's 2.
                "QWEN_IMAGE_DEFAULT_STEPS": "3",
                "QWEN_IMAGE_LORA_DIR": str(lora_folder(Path(tempfile.mkdtemp(prefix="l21-")))),
            },
        )
        servers.append(server.start())
    # A tasks service of its own that reaches both (the mesh's reaches the default server only).
    tasks_target = f"127.0.0.1:{free_port()}"
    tasks_env = {k: v for k, v in mesh.process("tasks").env.items() if k.startswith("TASKS_")}
    tasks = ServiceProcess.module(
        "tasks-21",
        "services.tasks",
        env={
            **tasks_env,
            "TASKS_LISTEN": tasks_target,
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='tasks-21-')}/t.db",
            "TASKS_MODEL_SERVERS": json.dumps(targets),
        },
    )
    servers.append(tasks.start())
    for target in (*targets.values(), tasks_target):
        wait_until(lambda t=target: grpc_serving(t), 180, target)  # type: ignore[misc]
    gw, url = mesh.another_gateway(
        "gateway-21",
        {"GATEWAY_MODEL_SERVERS": json.dumps(targets), "GATEWAY_TASKS_TARGET": tasks_target},
    )
    try:
        yield url
    finally:
        gw.stop()
        for server in servers:
            server.stop()


def test_generation_answers_a_png_of_the_asked_size(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "qwen-image-2.1", "prompt": "a lighthouse", "size": "128x96", **FAST},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert picture(item).size == (128, 96)


def test_edit_with_an_image_answers_a_picture_of_its_size(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/edits",
        data={"model": "qwen-image-2.1", "prompt": "make it blue", **FAST},
        files={"image": ("red.png", png(96, 64), "image/png")},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert picture(item).size == (96, 64)


def test_guidance_scale_is_refused_naming_the_model(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={
            "model": "qwen-image-2.1",
            "prompt": "a lighthouse",
            "size": "64x64",
            "guidance_scale": 3.5,
            **FAST,
        },
        timeout=60,
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "guidance_scale" in message and "Qwen-Image 2.1" in message


def test_a_mask_is_refused_naming_the_model(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/edits",
        data={"model": "qwen-image-2.1", "prompt": "make it blue", **FAST},
        files={
            "image": ("red.png", png(64, 64), "image/png"),
            "mask": ("mask.png", png(64, 64, (255, 255, 255)), "image/png"),
        },
        timeout=60,
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "mask" in message and "Qwen-Image 2.1" in message


def test_a_size_off_the_32_pixel_grid_is_refused_naming_the_model(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "qwen-image-2.1", "prompt": "a lighthouse", "size": "80x64", **FAST},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "multiple of 32" in message and "Qwen-Image 2.1" in message


def test_the_default_qwen_image_still_serves_1x(gateway: str) -> None:
    """`qwen-image` on the same gateway still reaches the 1.x server (no `server:`): a size on
    the 16-pixel grid that 2.1 would refuse is served."""
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"model": "qwen-image", "prompt": "a lighthouse", "size": "80x64", **FAST},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert picture(item).size == (80, 64)


def test_models_lists_qwen_image_21_ready_by_its_own_server(gateway: str, mesh: Mesh) -> None:
    """/v1/models says `qwen-image-2.1` is ready because its own server serves; the mesh's
    gateway, with no GATEWAY_MODEL_SERVERS, neither lists it nor routes it (404, not a 503)."""
    ours = httpx.get(f"{gateway}/v1/models", timeout=30).json()["data"]
    (entry,) = [m for m in ours if m["id"] == "qwen-image-2.1"]
    assert entry["ready"] is True and entry["backend"] == "qwen_image"
    theirs = httpx.get(f"{mesh.gateway_url}/v1/models", timeout=30).json()["data"]
    assert "qwen-image-2.1" not in [m["id"] for m in theirs]
    assert "qwen-image" in [m["id"] for m in theirs]
    response = httpx.post(
        f"{mesh.gateway_url}/v1/images/generations",
        json={"model": "qwen-image-2.1", "prompt": "a lighthouse", "size": "128x96", **FAST},
        timeout=30,
    )
    assert response.status_code == 404, response.text
    assert "qwen-image-2.1" in response.json()["error"]["message"]


@pytest.mark.parametrize("model", ["qwen-image-2.1", "qwen-image-2.1-turbo"])
def test_a_task_runs_on_the_models_own_server_and_keeps_its_png(gateway: str, model: str) -> None:
    """The task's PNG, read back from the bucket behind its link, is of the asked size: a 1.x
    server (or a 2.1 one refusing the size) would not answer 96x64 from this tasks service."""
    answer = httpx.post(
        f"{gateway}/api/v1/tasks/",
        json={
            "model": model,
            "parameters": {"prompt": "a lighthouse", "size": "96*64", "seed": 5},
            "is_async": False,
        },
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results["status"] == "completed", results
    stored = httpx.get(results["result"]["images"][0]["url"], timeout=30)
    assert stored.status_code == 200
    assert stored.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(stored.content))
    assert (image.format, image.size) == ("PNG", (96, 64))


def test_a_task_for_a_server_the_tasks_service_lacks_is_refused_naming_it(mesh: Mesh) -> None:
    """The session's tasks service has no TASKS_MODEL_SERVERS: a 2.1 task is refused at create
    (never queued, never run by the default 1.x server)."""
    with grpc.insecure_channel(mesh.targets["tasks"]) as channel:
        stub = tasks_pb2_grpc.TasksStub(channel)
        spec = tasks_pb2.TaskSpec(
            model="qwen-image-2.1",
            backend=tasks_pb2.TASK_BACKEND_QWEN_IMAGE,
            prompt="a lighthouse",
            n=1,
            server="qwen-image-2.1",
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateTask(tasks_pb2.CreateTaskRequest(spec=spec), timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'qwen-image-2.1'" in refused.value.details()
    assert "TASKS_MODEL_SERVERS" in refused.value.details()


def test_turbo_generates_with_its_own_few_steps(gateway: str) -> None:
    """An OpenAI-shaped request (no steps, no guidance) to Turbo runs its 2-sigma grid: the
    stream's total is 2 steps, not the server's default 3 or the gateway's 50, and with no step
    callback in a modular pipeline the one step event comes when the images do."""
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={
            "model": "qwen-image-2.1-turbo",
            "prompt": "a lighthouse",
            "size": "64x96",
            "stream": True,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    events = sse.parse(response.text)
    assert events[0].data["total_steps"] == 2
    steps = [e.data["step"] for e in events if e.event == "image_generation.progress"]
    assert steps[-1] == 2 and 1 not in steps
    done = events[-1].data
    assert done["type"] == "image_generation.completed"
    assert Image.open(io.BytesIO(base64.b64decode(done["b64_json"]))).size == (64, 96)


def test_turbo_edits_an_image(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/edits",
        data={
            "model": "qwen-image-2.1-turbo",
            "prompt": "make it blue",
            "response_format": "b64_json",
        },
        files={"image": ("red.png", png(96, 64), "image/png")},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert picture(item).size == (96, 64)


def test_turbo_refuses_a_negative_prompt_naming_itself(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={
            "model": "qwen-image-2.1-turbo",
            "prompt": "a lighthouse",
            "negative_prompt": "blur",
            "size": "64x64",
        },
        timeout=60,
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "negative_prompt" in message and "2.1 Turbo" in message


@pytest.mark.parametrize("model", ["qwen-image-2.1", "qwen-image-2.1-turbo"])
def test_n_2_answers_two_different_pictures(gateway: str, model: str) -> None:
    """Two images share one pipeline call (a prompt and a generator each): both come back, of
    the asked size, seeded apart."""
    response = httpx.post(
        f"{gateway}/v1/images/generations",
        json={
            "model": model,
            "prompt": "a lighthouse",
            "size": "64x64",
            "n": 2,
            "seed": 5,
            "response_format": "b64_json",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    first, second = (picture(item) for item in response.json()["data"])
    assert first.size == second.size == (64, 64)
    assert first.tobytes() != second.tobytes()


@pytest.mark.parametrize("model", ["qwen-image-2.1", "qwen-image-2.1-turbo"])
def test_a_lora_through_rest_changes_the_picture_and_models_lists_it(
    gateway: str, model: str
) -> None:
    """`lora` in a REST generation reaches the model's own server (its LORA_DIR), and
    `/v1/models` lists that server's adapters under the model."""

    def generate(**extra: object) -> np.ndarray:
        response = httpx.post(
            f"{gateway}/v1/images/generations",
            json={"model": model, "prompt": "a lighthouse", "size": "64x96", **FAST, **extra},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return np.asarray(picture(response.json()["data"][0]).convert("RGB"), dtype=np.float64)

    base, adapted = generate(), generate(lora={"name": "tiny-a"})
    assert np.abs(adapted - base).mean() > 0.05
    assert np.array_equal(generate(lora={"name": "tiny-a", "scale": 0}), base)
    listed = {m["id"]: m for m in httpx.get(f"{gateway}/v1/models", timeout=30).json()["data"]}
    assert "tiny-a" in {lora["name"] for lora in listed[model]["loras"]}
