"""Streamed generations and edits through the gateway, over the real mesh: progress per step,
partial images, the completed image (base64 or a link into our bucket), errors before and during
the stream, the OpenAI SDK reading the stream, and a client that hangs up freeing the model
server within a couple of steps."""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.fakes.pngs import png
from tests.support.mesh import Mesh
from tests.support.sse import Event, parse
from tests.support.waiting import wait_until

GENERATIONS = "/v1/images/generations"


def picture(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    assert image.format == "PNG"
    return image


def stream(mesh: Mesh, path: str, **kwargs: Any) -> tuple[httpx.Response, list[Event]]:
    answer = httpx.post(f"{mesh.gateway_url}{path}", timeout=120, **kwargs)
    if answer.headers["content-type"].startswith("text/event-stream"):
        return answer, parse(answer.text)
    return answer, []


def names(events: list[Event]) -> list[str]:
    """Running steps as "step N", partials as "partial I", others by type."""
    out = []
    for event in events:
        kind = event.data.get("type", event.event)
        if kind.endswith(".progress"):
            if event.data["step"]:
                out.append(f"step {event.data['step']}")
        elif kind.endswith(".partial_image"):
            out.append(f"partial {event.data['partial_image_index']}")
        else:
            out.append(kind)
    return out


def test_a_streamed_generation_gives_steps_partials_then_the_image(mesh: Mesh) -> None:
    body = {
        "prompt": "a lighthouse",
        "size": "64x64",
        "num_inference_steps": 4,
        "partial_images": 2,
        "stream": True,
        "seed": 3,
    }
    answer, events = stream(mesh, GENERATIONS, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert names(events) == [
        "step 1", "partial 0", "step 2", "step 3", "partial 1", "step 4",
        "image_generation.completed",
    ]  # fmt: skip
    assert all(e.event == e.data["type"] for e in events)
    first = events[0].data
    assert first["type"] == "image_generation.progress" and first["step"] == 0
    assert first["total_steps"] == 4 and first["queue_position"] >= 0
    for partial in [e.data for e in events if e.event == "image_generation.partial_image"]:
        assert picture(partial["b64_json"]).size == (64, 64)
        # OpenAI's size enum has no 64x64: "auto", and width/height say it.
        assert (partial["size"], partial["width"], partial["height"]) == ("auto", 64, 64)
        assert partial["output_format"] == "png"
    done = events[-1].data
    assert picture(done["b64_json"]).size == (64, 64)
    assert (done["size"], done["width"], done["height"]) == ("auto", 64, 64)
    assert done["seed"] == 3 and done["model"] == "qwen-image"
    assert done["request_id"] == answer.headers["x-request-id"]
    assert done["usage"]["image_count"] == 1 and "url" not in done


def test_a_stream_that_asks_for_url_completes_with_a_link(mesh: Mesh) -> None:
    body = {"prompt": "a boat", "size": "64x64", "num_inference_steps": 2, "stream": True}
    answer, events = stream(mesh, GENERATIONS, json={**body, "n": 2, "response_format": "url"})
    assert answer.status_code == 200, answer.text
    completed = [e.data for e in events if e.event == "image_generation.completed"]
    assert [c["index"] for c in completed] == [0, 1]
    for item in completed:
        assert item["url"].startswith(mesh.link_prefix) and "b64_json" not in item
        assert Image.open(io.BytesIO(httpx.get(item["url"], timeout=30).content)).size == (64, 64)


def test_a_streamed_multipart_edit_uses_the_edit_event_names(mesh: Mesh) -> None:
    form = {
        "prompt": "make it blue",
        "size": "64x64",
        "num_inference_steps": "2",
        "partial_images": "1",
        "stream": "true",
    }
    files = {"image": ("cat.png", png(64, 64), "image/png")}
    answer, events = stream(mesh, "/v1/images/edits", data=form, files=files)
    assert answer.status_code == 200, answer.text
    assert names(events) == ["step 1", "partial 0", "step 2", "image_edit.completed"]
    assert events[0].event == "image_edit.progress"
    assert picture(events[-1].data["b64_json"]).size == (64, 64)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"partial_images": 4}, 400, "partial_images"),
        ({"model": "no-such-model"}, 404, "no-such-model"),
        ({"size": "65x64"}, 400, "multiple of 16"),
        ({"model": "gpt-image-1"}, 503, "OPENAI_API_KEY"),
    ],
)
def test_what_fails_before_the_stream_is_a_plain_envelope(
    mesh: Mesh, body: dict[str, Any], status: int, says: str
) -> None:
    request = {"prompt": "a cat", "size": "64x64", "stream": True, **body}
    answer = httpx.post(f"{mesh.gateway_url}{GENERATIONS}", json=request, timeout=60)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["code"] == status and says in answer.json()["message"]


@pytest.fixture
def storage_back(mesh: Mesh) -> Iterator[Mesh]:
    yield mesh
    mesh.ensure_running("storage")


def test_an_error_during_the_stream_is_an_error_event_then_the_end(storage_back: Mesh) -> None:
    """Storage goes down while the model works: the link cannot be made, so the stream's last
    event is the error envelope."""
    mesh = storage_back
    body = {
        "prompt": "a tree",
        "size": "64x64",
        "num_inference_steps": 3,
        "stream": True,
        "response_format": "url",
    }
    with httpx.stream("POST", f"{mesh.gateway_url}{GENERATIONS}", json=body, timeout=120) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        text = ""
        for line in lines:
            text += line + "\n"
            if line == "" and "image_generation.progress" in text:
                break
        mesh.process("storage").kill()
        text += "".join(line + "\n" for line in lines)
    events = parse(text)
    assert events[-1].event == "error"
    envelope = events[-1].data
    assert envelope["code"] == 503 and "storage" in envelope["message"]
    assert envelope["error"]["message"] == envelope["message"] and envelope["request_id"]
    assert not any(e.event.endswith(".completed") for e in events)


def test_the_openai_sdk_reads_the_stream(mesh: Mesh) -> None:
    client = openai.OpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="none", max_retries=0)
    events = list(
        client.images.generate(
            model="qwen-image",
            prompt="a kite",
            size="64x64",  # type: ignore[arg-type]
            stream=True,
            partial_images=1,
            extra_body={"num_inference_steps": 3},
        )
    )
    types = [event.type for event in events]
    assert types.count("image_generation.partial_image") == 1
    assert types[-1] == "image_generation.completed"
    assert {"image_generation.progress"} == set(types) - {
        "image_generation.partial_image",
        "image_generation.completed",
    }
    assert picture(events[-1].b64_json).size == (64, 64)  # type: ignore[union-attr]


def stopped_after(mesh: Mesh, request_id: str) -> int:
    """The steps the model server ran for this request id, from its "job stopped" log line."""
    pattern = re.compile(rf"\[{request_id}\] job stopped after (\d+) of \d+ steps")
    found: list[int] = []

    def logged() -> bool:
        text = mesh.process("qwen_image").log_path.read_text(errors="replace")
        found[:] = [int(m) for m in pattern.findall(text)]
        return bool(found)

    wait_until(logged, 60, f"the qwen_image log line for {request_id}")
    return found[0]


def test_hanging_up_mid_stream_frees_the_model_server_within_a_couple_of_steps(
    mesh: Mesh,
) -> None:
    """A 100-step job is streamed; its client hangs up after step 2. The model server stops it
    at its next step (its log says so with the request id) and the next request runs."""
    long_id = f"hangup-{uuid.uuid4().hex[:12]}"
    long_job = {"prompt": "long", "size": "256x256", "num_inference_steps": 100, "stream": True}
    url = f"{mesh.gateway_url}{GENERATIONS}"
    headers = {"X-Request-ID": long_id}
    with httpx.stream("POST", url, json=long_job, headers=headers, timeout=120) as answer:
        assert answer.status_code == 200
        seen = ""
        for line in answer.iter_lines():
            seen += line + "\n"
            if line == "" and [e.data["step"] for e in parse(seen)][-1] == 2:
                break
    # Closing the response closed the connection mid-body.
    answer, events = stream(
        mesh,
        GENERATIONS,
        json={"prompt": "next", "size": "64x64", "num_inference_steps": 2, "stream": True},
    )
    ran = stopped_after(mesh, long_id)
    assert 2 <= ran <= 4, f"the long job ran {ran} steps; its client left after step 2"
    assert names(events) == ["step 1", "step 2", "image_generation.completed"]
