"""The edge middleware and error handlers on a minimal app, in process: every failure is an
envelope with the request id, a bug included (500 without a traceback)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.gateway import errors
from services.gateway.middleware import ApiKeys, BodyLimit, RequestContext


def build(keys: list[str] | None = None) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return body

    app.add_middleware(BodyLimit, max_bytes=1024)
    app.add_middleware(ApiKeys, keys=keys or [])
    app.add_middleware(RequestContext)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw"
    )


async def test_a_bug_is_a_500_envelope_with_the_request_id() -> None:
    async with client(build()) as http:
        answer = await http.get("/boom", headers={"X-Request-ID": "rid-boom"})
    body = answer.json()
    assert answer.status_code == 500 and body["code"] == 500
    assert body["request_id"] == "rid-boom" and answer.headers["x-request-id"] == "rid-boom"
    assert "secret" not in answer.text and "Traceback" not in answer.text


async def test_fastapi_validation_and_malformed_json_are_envelopes() -> None:
    async with client(build()) as http:
        wrong = await http.post("/echo", json=[1, 2])
        malformed = await http.post(
            "/echo", content=b"{oops", headers={"Content-Type": "application/json"}
        )
    assert wrong.status_code == 400 and "must be an object" in wrong.json()["message"]
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["message"]


async def test_body_cap_and_keys() -> None:
    async with client(build(["k1"])) as http:
        big = await http.post("/echo", content=b"x" * 2048, headers={"Authorization": "Bearer k1"})
        none = await http.post("/echo", json={})
    assert big.status_code == 413 and big.json()["code"] == 413
    assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"


async def test_a_sane_client_request_id_is_kept_and_an_odd_one_replaced() -> None:
    async with client(build()) as http:
        kept = await http.post("/echo", json={}, headers={"X-Request-ID": "abc-123"})
        odd = await http.post("/echo", json={}, headers={"X-Request-ID": "x" * 500})
    assert kept.headers["x-request-id"] == "abc-123"
    assert odd.headers["x-request-id"] != "x" * 500 and len(odd.headers["x-request-id"]) == 32
