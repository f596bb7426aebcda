"""What a client must see when the gateway refuses: an envelope it can read, never a traceback.

Two envelopes exist: the gateway's own (`{code: <HTTP status>, message, request_id, error}`, on
the OpenAI-shaped and task endpoints) and DashScope's (`{code: "InvalidParameter", message,
request_id}`, on the DashScope-compatible endpoints, as the DashScope SDK expects).
"""

from __future__ import annotations

import httpx

DASHSCOPE_PATHS = ("/api/v1/services/", "/api/v1/tasks/")


def assert_refusal(answer: httpx.Response, path: str = "") -> dict:
    """A 4xx whose body is an envelope with a message a person can act on; returns the body."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    assert "Traceback" not in answer.text
    body = answer.json()
    assert isinstance(body, dict), body
    message = body.get("message")
    assert isinstance(message, str) and message.strip(), body
    assert body.get("request_id") == answer.headers["x-request-id"], body
    if isinstance(body.get("code"), str):  # DashScope's shape
        assert path.startswith(DASHSCOPE_PATHS) and body["code"], body
    else:
        assert body["code"] == answer.status_code, body
        assert body["error"]["message"] == message, body
    return body


def assert_answered(answer: httpx.Response, path: str = "") -> None:
    """Anything but a 5xx: a success, or a refusal in the envelope."""
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])
    if answer.status_code >= 400:
        assert_refusal(answer, path)
