"""Large answers through the real mesh (issue 18 §2): a batch's images come from the model server
one message at a time and the gateway writes each image's base64 as it arrives (a chunked answer)
or uploads each as it arrives (`url`). What a client reads: every image, a PNG of the size asked,
in the same JSON shape as ever; an error from the model server before the first image is still
the ordinary error envelope."""

from __future__ import annotations

import base64
import io
from typing import Any

import grpc
import httpx
from imagemesh.v1 import qwen_image_pb2, qwen_image_pb2_grpc
from PIL import Image

from tests.support.mesh import Mesh

SMALL = {"size": "64x80", "num_inference_steps": 2, "seed": 11}


def post(mesh: Mesh, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{mesh.gateway_url}/v1/images/generations", json=body, timeout=300)


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_model_server_sends_a_batch_one_image_per_result_event(mesh: Mesh) -> None:
    request = qwen_image_pb2.GenerateRequest(
        prompt="a harbour", width=64, height=80, num_inference_steps=2, num_images=3, seed=5
    )
    with grpc.insecure_channel(mesh.targets["qwen_image"]) as channel:
        stub = qwen_image_pb2_grpc.ImageGenerationStub(channel)
        request.result_per_image = True
        events = list(stub.GenerateStream(request))
        one_by_one = [e.result for e in events if e.HasField("result")]
        assert len(one_by_one) == len(events)  # no progress: nothing before the first image
        request.result_per_image = False
        together = [e.result for e in stub.GenerateStream(request) if e.HasField("result")]
    assert [(len(r.images), r.images_total) for r in one_by_one] == [(1, 3)] * 3
    assert all(r.usage.image_count == 3 and r.model for r in one_by_one)
    assert [(len(r.images), r.images_total) for r in together] == [(3, 0)]
    assert [r.images[0].data for r in one_by_one] == [i.data for i in together[0].images]


def test_a_batch_of_four_streams_four_pngs_of_the_size_asked(mesh: Mesh) -> None:
    body = {"model": "qwen-image", "prompt": "a harbour", "n": 4, **SMALL}
    answer = post(mesh, {**body, "response_format": "b64_json"})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("transfer-encoding") == "chunked"  # written as the images came
    assert "model;dur=" in answer.headers["server-timing"]
    document = answer.json()
    assert (document["code"], document["message"]) == (0, "success")
    assert document["usage"]["output_tokens"] > 0
    seeds = [item["seed"] for item in document["data"]]
    assert len(set(seeds)) == 4
    pictures = [picture(base64.b64decode(item["b64_json"])) for item in document["data"]]
    assert [(p.format, p.size) for p in pictures] == [("PNG", (64, 80))] * 4
    # The same batch as links: uploaded one by one as they came, the same pictures.
    links = post(mesh, {**body, "response_format": "url"})
    assert links.status_code == 200, links.text
    stored = [httpx.get(item["url"], timeout=30).content for item in links.json()["data"]]
    assert [item["seed"] for item in links.json()["data"]] == seeds
    assert [picture(data).tobytes() for data in stored] == [p.tobytes() for p in pictures]


def test_a_dashscope_batch_streams_its_images_too(mesh: Mesh) -> None:
    body = {
        "model": "qwen-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "a harbour"}]}]},
        "parameters": {
            "n": 2,
            "size": "64*80",
            "num_inference_steps": 2,
            "seed": 3,
            "response_format": "b64_json",
        },
    }
    answer = httpx.post(f"{mesh.gateway_url}/v1/images/generations", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    assert output["task_metric"]["SUCCEEDED"] == 2
    images = [choice["message"]["content"][0] for choice in output["choices"]]
    decoded = [picture(base64.b64decode(item["b64_json"])) for item in images]
    assert [(p.format, p.size) for p in decoded] == [("PNG", (64, 80))] * 2
    assert answer.json()["usage"]["image_count"] == 2


def test_an_error_before_the_first_image_is_a_clean_envelope(mesh: Mesh) -> None:
    # The model server refuses the adapter once the stream has begun: no image, no head sent.
    body = {"model": "qwen-image", "prompt": "a fox", "n": 4, "lora": {"name": "no-such"}}
    answer = post(mesh, {**body, **SMALL, "response_format": "b64_json"})
    assert answer.status_code == 404, answer.text
    assert "content-length" in answer.headers
    error = answer.json()
    assert "no adapter 'no-such'" in error["message"]
    assert error["code"] == 404 and error["error"]["message"] == error["message"]
