"""Qwen-Image-Layered (`qwen-image-layered`) on the tiny Layered pipeline: the mesh's qwen_edit
server of its own pointed at `models/qwen-image-layered-tiny` (its model index names
`QwenImageLayeredPipeline`; no setting picks it), reached through the catalogue's `server:` and
GATEWAY_MODEL_SERVERS. `/v1/images/layers` answers one RGBA PNG per layer (base64 or links), the
server answers the same over gRPC, and what the pipeline does not take answers 4xx naming the
field and the model.
"""

from __future__ import annotations

import base64
import io

import grpc
import httpx
import pytest
from imagemesh.v1 import common_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from services.qwen_edit.layered import working_size
from tests.support.mesh import Mesh

FAST = {"model": "qwen-image-layered", "num_inference_steps": 2, "seed": 7}


def png(width: int = 96, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 40, 40, 180)).save(buffer, "PNG")
    return buffer.getvalue()


def layer(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_json_b64_answers_one_rgba_png_per_layer_of_the_asked_size(mesh: Mesh) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/v1/images/layers",
        json={
            **FAST,
            "image": data_url(png()),
            "prompt": "a red card",
            "layers": 3,
            "size": "96x64",
            "response_format": "b64_json",
        },
        timeout=180,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 3
    for item in data:
        picture = layer(base64.b64decode(item["b64_json"]))
        assert (picture.mode, picture.size) == ("RGBA", (96, 64))


def test_multipart_url_answers_links_at_the_pipelines_own_size(mesh: Mesh) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/v1/images/layers",
        data={**{k: str(v) for k, v in FAST.items()}, "prompt": "a red card", "layers": "2"},
        files={"image": ("card.png", png(), "image/png")},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2
    # 640² pixels at the input's 3:2, on the 32 grid: what the pipeline makes.
    expected = working_size(Image.new("RGBA", (96, 64)), 640)
    assert expected == (768, 512)
    for item in data:
        fetched = httpx.get(item["url"], timeout=30)
        assert fetched.status_code == 200
        picture = layer(fetched.content)
        assert (picture.mode, picture.size) == ("RGBA", expected)


def test_the_layered_server_answers_over_grpc(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.targets["layered"]) as channel:
        stub = qwen_edit_pb2_grpc.ImageEditingStub(channel)
        result = stub.Edit(
            qwen_edit_pb2.EditRequest(
                images=[common_pb2.ImageInput(data=png())],
                prompt="a red card",
                num_inference_steps=2,
                seed=3,
                width=64,
                height=64,
                layers=2,
            ),
            timeout=180,
        )
        assert len(result.images) == 2
        for image in result.images:
            picture = layer(image.data)
            assert (picture.mode, picture.size) == ("RGBA", (64, 64))
            assert image.mime_type == "image/png"
        assert result.usage.image_count == 2


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"num_images": 2}, "num_images: 2; Qwen-Image-Layered"),
        ({"partial_images": 1}, "partial_images: Qwen-Image-Layered"),
        ({"output_format": common_pb2.OUTPUT_FORMAT_JPEG}, "output_format: jpeg has no alpha"),
        ({"strength": 0.5}, "strength: Qwen-Image-Layered"),
        ({"guidance_scale": 3.0}, "guidance_scale: Qwen-Image-Layered"),
        ({"resolution": 800}, "resolution: 800 is not one of Qwen-Image-Layered"),
        ({"layers": 99}, "layers: 99 is outside 1..8"),
    ],
)
def test_the_layered_server_refuses_what_it_does_not_take(
    mesh: Mesh, fields: dict[str, object], fragment: str
) -> None:
    with grpc.insecure_channel(mesh.targets["layered"]) as channel:
        stub = qwen_edit_pb2_grpc.ImageEditingStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Edit(
                qwen_edit_pb2.EditRequest(
                    images=[common_pb2.ImageInput(data=png())], prompt="x", **fields
                ),
                timeout=60,
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (caught.value.details() or "")


def test_an_edit_server_refuses_layers_naming_where_they_go(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.targets["qwen_edit"]) as channel:
        stub = qwen_edit_pb2_grpc.ImageEditingStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Edit(
                qwen_edit_pb2.EditRequest(
                    images=[common_pb2.ImageInput(data=png())], prompt="x", layers=3
                ),
                timeout=60,
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "layers: this server runs QwenImageEditPipeline" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"layers": 9}, "layers", "layers"),
        ({"layers": 1}, "layers", "layers"),
        ({"resolution": 800}, "resolution", "resolution"),
        ({"image": None}, "image", "image is required"),
        ({"size": "60x48"}, "width", "multiple of 16"),
        ({"output_format": "jpeg"}, "output_format", "output_format"),
        ({"layer": 3}, "layer", "did you mean"),
    ],
)
def test_bad_values_answer_400_naming_the_field(
    mesh: Mesh, body: dict[str, object], param: str, fragment: str
) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/v1/images/layers",
        json={**FAST, "image": data_url(png()), **body},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]


def test_a_model_that_does_not_split_images_is_refused(mesh: Mesh) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/v1/images/layers",
        json={**FAST, "model": "qwen-image-edit", "image": data_url(png())},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert "not /v1/images/layers" in response.json()["error"]["message"]


def test_a_layers_task_keeps_one_rgba_png_per_layer(mesh: Mesh) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={
            "model": "qwen-image-layered",
            "is_async": False,
            "parameters": {
                "prompt": "a red card",
                "image": data_url(png()),
                "layers": 2,
                "size": "96*64",
                "num_inference_steps": 2,
                "seed": 5,
            },
        },
        timeout=180,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results["status"] == "completed", results
    images = results["result"]["images"]
    assert len(images) == 2
    for image in images:
        picture = layer(httpx.get(image["url"], timeout=30).content)
        assert (picture.mode, picture.size) == ("RGBA", (96, 64))


@pytest.mark.parametrize(
    ("parameters", "param"),
    [
        ({"prompt": "x", "layers": 2}, "parameters.image"),
        ({"prompt": "x", "image": "IMAGE", "layers": 12}, "parameters.layers"),
        ({"prompt": "x", "image": "IMAGE", "resolution": 700}, "parameters.resolution"),
    ],
)
def test_a_bad_layers_task_is_refused_at_create(
    mesh: Mesh, parameters: dict[str, object], param: str
) -> None:
    given = {k: data_url(png()) if v == "IMAGE" else v for k, v in parameters.items()}
    response = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={"model": "qwen-image-layered", "parameters": given},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_layers_on_a_model_that_does_not_split_images_is_refused_at_create(mesh: Mesh) -> None:
    response = httpx.post(
        f"{mesh.gateway_url}/api/v1/tasks/",
        json={"model": "qwen-image", "parameters": {"prompt": "x", "layers": 3}},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert "qwen-image-layered" in response.json()["error"]["message"]


def test_models_lists_the_layered_model_ready_at_its_route(mesh: Mesh) -> None:
    body = httpx.get(f"{mesh.gateway_url}/v1/models", timeout=30).json()
    by_name = {item["model"]: item for item in body["data"]}
    entry = by_name["qwen-image-layered"]
    assert entry["url"].endswith("/v1/images/layers")
    assert entry["ready"] is True


def test_edit_stream_reports_each_step_then_the_layers(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.targets["layered"]) as channel:
        stub = qwen_edit_pb2_grpc.ImageEditingStub(channel)
        events = list(
            stub.EditStream(
                qwen_edit_pb2.EditRequest(
                    images=[common_pb2.ImageInput(data=png())],
                    prompt="a red card",
                    num_inference_steps=3,
                    seed=3,
                    width=64,
                    height=64,
                    layers=2,
                ),
                timeout=180,
            )
        )
    steps = [
        e.progress.step for e in events if e.WhichOneof("event") == "progress" and e.progress.step
    ]
    assert steps == [1, 2, 3]
    assert events[-1].WhichOneof("event") == "result"
    assert len(events[-1].result.images) == 2
