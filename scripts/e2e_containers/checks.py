"""What a user of the containerised mesh sees, through the gateway's published port only: the key
from the Secret is required, a generation, an edit of its picture, a streamed generation and a
task all answer real images (the task's in the bucket, behind the link it answers)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from PIL import Image

SIZE = "256x256"
STEPS = 2


class CheckFailed(AssertionError):
    pass


@dataclass
class Gateway:
    base_url: str
    api_key: str
    # Our bucket's links name the S3 Service (http://minio:9000/...); the host reaches it here.
    s3_url: str

    def client(self, authorised: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if authorised else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=300)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except OSError as exc:
        raise CheckFailed(f"{what}: not an image ({exc})") from exc
    _expect(f"{image.width}x{image.height}" == SIZE, f"{what}: {image.size}, asked {SIZE}")
    return image


def _answer(response: httpx.Response, what: str) -> dict:
    _expect(response.status_code == 200, f"{what}: {response.status_code} {response.text[:300]}")
    return response.json()


def key_required(gw: Gateway) -> str:
    with gw.client(authorised=False) as client:
        response = client.post("/v1/images/generations", json={"prompt": "x", "size": SIZE})
    _expect(response.status_code == 401, f"no key: {response.status_code}, not 401")
    return "401 without the key from gateway-api-keys"


def generation(gw: Gateway) -> tuple[str, bytes]:
    body = {
        "model": "qwen-image",
        "prompt": "a red kite over the sea",
        "size": SIZE,
        "num_inference_steps": STEPS,
        "seed": 7,
        "response_format": "b64_json",
    }
    with gw.client() as client:
        answer = _answer(client.post("/v1/images/generations", json=body), "generation")
    png = base64.b64decode(answer["data"][0]["b64_json"])
    _image(png, "generation")
    return f"qwen-image {SIZE}, {len(png)} bytes of PNG", png


def edit(gw: Gateway, picture: bytes) -> str:
    form = {
        "model": "qwen-image-edit",
        "prompt": "make the kite blue",
        "size": SIZE,
        "num_inference_steps": str(STEPS),
        "response_format": "b64_json",
    }
    with gw.client() as client:
        response = client.post(
            "/v1/images/edits", data=form, files={"image": ("kite.png", picture, "image/png")}
        )
    answer = _answer(response, "edit")
    edited = base64.b64decode(answer["data"][0]["b64_json"])
    _image(edited, "edit")
    return f"qwen-image-edit {SIZE}, {len(edited)} bytes of PNG"


def streamed_generation(gw: Gateway) -> str:
    body = {
        "model": "qwen-image",
        "prompt": "a lighthouse at dusk",
        "size": SIZE,
        "num_inference_steps": 4,
        "partial_images": 1,
        "stream": True,
    }
    events: list[tuple[str, dict]] = []
    with gw.client() as client, client.stream("POST", "/v1/images/generations", json=body) as r:
        _expect(r.status_code == 200, f"stream: {r.status_code} {r.read()[:300]!r}")
        _expect(r.headers["content-type"].startswith("text/event-stream"), "stream: not SSE")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    names = [n for n, _ in events]
    _expect("image_generation.progress" in names, f"stream: no progress event in {names}")
    _expect("image_generation.partial_image" in names, f"stream: no partial image in {names}")
    _expect(names[-1] == "image_generation.completed", f"stream ends with {names[-1:]}")
    _image(base64.b64decode(events[-1][1]["b64_json"]), "streamed generation")
    steps = [e["step"] for n, e in events if n == "image_generation.progress"]
    return f"{len(events)} events: progress to step {max(steps)}, a partial image, the image"


def task(gw: Gateway, poll: Callable[[float], None] = time.sleep) -> str:
    body = {
        "model": "qwen-image",
        "parameters": {"prompt": "a flower shop", "size": SIZE.replace("x", "*"), "seed": 3},
        "is_async": True,
    }
    with gw.client() as client:
        created = _answer(client.post("/api/v1/tasks/", json=body), "task create")
        task_id = created["results"]["task_id"]
        deadline = time.monotonic() + 300
        status = ""
        while time.monotonic() < deadline:
            status = _answer(client.get(f"/api/v1/tasks/{task_id}/status"), "task status")[
                "results"
            ]["status"]
            if status in ("completed", "failed", "canceled"):
                break
            poll(0.5)
        _expect(status == "completed", f"task {task_id}: {status}")
        result = _answer(client.get(f"/api/v1/tasks/{task_id}/result"), "task result")
    url = result["results"]["result"]["images"][0]["url"]
    bucket_path = url.split("://", 1)[1].split("/", 1)[1]
    # The link is presigned for the S3 Service's name; read the object at the same path.
    picture = httpx.get(f"{gw.s3_url}/{bucket_path}", timeout=60)
    _expect(picture.status_code == 200, f"task image {url}: {picture.status_code}")
    _image(picture.content, "task image")
    return f"task {task_id} completed, its image in the bucket ({len(picture.content)} bytes)"
