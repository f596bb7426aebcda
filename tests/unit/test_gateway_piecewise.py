"""The piecewise JSON answer: what the client reads is the same JSON a JSONResponse would give,
with a right Content-Length, whatever mix of large and small images and non-ASCII text."""

from __future__ import annotations

import base64
import json
import os

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway.piecewise import LARGE, PiecewiseJSONResponse


def _answer(content: dict) -> tuple[bytes, str]:
    app = FastAPI()

    @app.get("/")
    async def route() -> PiecewiseJSONResponse:
        return PiecewiseJSONResponse(content, headers={"Server-Timing": "model;dur=1"})

    with TestClient(app) as client:
        answer = client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["server-timing"] == "model;dur=1"
    return answer.content, answer.headers["content-length"]


def test_large_and_small_images_and_unicode_read_back_the_same() -> None:
    big = [base64.b64encode(os.urandom(LARGE + i)).decode() for i in range(3)]
    content = {
        "code": 0,
        "message": "success",
        "data": [
            {"b64_json": big[0], "revised_prompt": "风筝 over the hills"},
            {"b64_json": "c21hbGw="},
        ]
        + [{"b64_json": b, "seed": i} for i, b in enumerate(big[1:])],
        "output": {"choices": [{"message": {"content": [{"b64_json": big[2]}]}}]},
    }
    body, length = _answer(content)
    assert json.loads(body) == content
    assert int(length) == len(body)


def test_an_answer_without_images_is_plain_json() -> None:
    content = {"code": 0, "message": "success", "data": [{"url": "http://bucket/a.png"}]}
    body, length = _answer(content)
    assert json.loads(body) == content and int(length) == len(body)
