"""The streamed b64_json answer (issue 18 §2): the bytes a client reads are the same document the
whole answer gives, in both shapes, whatever the images' seeds and the prompt's text; a failure
after the head cuts the answer short instead of ending it as if whole."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from imagemesh.v1 import common_pb2

from services.gateway.arriving import Arrival, ArrivingOutcome, as_base64, whole
from services.gateway.errors import ApiError
from services.gateway.images.protocol import dashscope_answer, openai_answer
from services.gateway.outcome import Outcome, Tokens
from services.gateway.piecewise import PiecewiseJSONResponse
from services.gateway.streamed_json import StreamedJSONResponse

SIZES = [70_000, 3, 200_000, 65_536]


def _arrivals() -> list[Arrival]:
    usage = common_pb2.Usage(width=64, height=48, image_count=len(SIZES), output_tokens=9)
    return [
        Arrival(
            index,
            len(SIZES),
            common_pb2.Image(
                data=random.Random(size).randbytes(size),
                mime_type="image/png",
                width=64,
                height=48,
                seed=7 + index,
            ),
            usage,
            0.5,
        )
        for index, size in enumerate(SIZES)
    ]


async def _rest(items: list[Arrival], fail_at: int | None = None) -> AsyncIterator[Arrival]:
    for item in items:
        if item.index == fail_at:
            raise ApiError(502, "qwen-image went away")
        yield item


def _arriving(fail_at: int | None = None) -> ArrivingOutcome:
    items = _arrivals()
    outcome = Outcome(
        "qwen-image",
        [],
        64,
        48,
        created=1_700_000_000,
        revised_prompt="风筝 over the hills",
        tokens=Tokens(output=9),
    )
    return ArrivingOutcome(outcome, items[0], _rest(items[1:], fail_at))


def _whole(render: Callable[[Outcome], dict[str, Any]]) -> bytes:
    app = FastAPI()

    @app.get("/")
    async def route() -> PiecewiseJSONResponse:
        outcome = await whole(_arriving())
        return PiecewiseJSONResponse(render(outcome))

    with TestClient(app) as client:
        return client.get("/").content


def _streamed(
    render: Callable[[Outcome], dict[str, Any]], fail_at: int | None = None
) -> httpx.Response:
    app = FastAPI()

    @app.get("/")
    async def route() -> StreamedJSONResponse:
        return StreamedJSONResponse(_arriving(fail_at), render, {"Server-Timing": "model;dur=1"})

    with TestClient(app) as client:
        return client.get("/")


@pytest.mark.parametrize("render", [openai_answer, dashscope_answer])
def test_the_streamed_answer_is_the_whole_answer_byte_for_byte(
    render: Callable[[Outcome], dict[str, Any]],
) -> None:
    answer = _streamed(render)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["server-timing"] == "model;dur=1"
    assert "content-length" not in answer.headers  # chunked: the length comes with the images
    assert answer.content == _whole(render)
    document = json.loads(answer.content)
    if render is openai_answer:
        items = document["data"]
        assert [item["seed"] for item in items] == [7, 8, 9, 10]
        assert {item["revised_prompt"] for item in items} == {"风筝 over the hills"}
        encoded = [item["b64_json"] for item in items]
    else:
        choices = document["output"]["choices"]
        encoded = [choice["message"]["content"][0]["b64_json"] for choice in choices]
    assert encoded == [as_base64(item).b64_json for item in _arrivals()]


def test_a_failure_after_the_head_cuts_the_answer_short() -> None:
    # TestClient hands the app's body over as it came: what was sent, without the tail.
    answer = _streamed(openai_answer, fail_at=2)
    assert answer.status_code == 200
    body = answer.content
    assert body.startswith(b'{"code":0,"message":"success"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert b'"usage"' not in body  # the tail never went out
