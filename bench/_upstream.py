"""An OpenAI-style upstream that answers at once: the floor the forwarding bench measures over.

A bare ASGI app under uvicorn (no framework), one fixed `chat.completion` answer, Bearer auth
checked as the real API does. A body with `"stream": true` gets a 20-chunk server-sent event
stream instead (role, 18 content pieces, finish_reason + usage), each chunk its own write, then
`data: [DONE]`, as OpenAI sends it. Run: `python -m bench._upstream --port 8900 --key sk-bench`.
"""

from __future__ import annotations

import argparse
import json

import uvicorn

ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1754000000,
        "model": "gpt-5-2025-08-07",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A red bicycle.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()
STREAM_CHUNKS = 20
_WORDS = [
    "A",
    "red",
    "bicycle",
    "leans",
    "on",
    "a",
    "white",
    "wall",
    "in",
    "the",
    "morning",
    "sun",
    "by",
    "an",
    "old",
    "blue",
    "door",
]


def _stream_events() -> list[bytes]:
    def event(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1754000000,
            "model": "gpt-5-2025-08-07",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": f" {word}"}) for word in _WORDS[: STREAM_CHUNKS - 2]]
    usage = {"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}
    events.append(event({}, "stop", usage))
    return events + [b"data: [DONE]\n\n"]


STREAM = _stream_events()
UNAUTHORIZED = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'


def app_for(key: str):
    expected = f"Bearer {key}".encode()

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        more, received = True, b""
        while more:  # drain the body
            message = await receive()
            received += message.get("body", b"")
            more = message.get("more_body", False)
        authorized = dict(scope["headers"]).get(b"authorization") == expected
        if authorized and (b'"stream": true' in received or b'"stream":true' in received):
            await _stream(send)
            return
        body = ANSWER if authorized else UNAUTHORIZED
        await send(
            {
                "type": "http.response.start",
                "status": 200 if authorized else 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", b"req_b"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def _stream(send) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"x-request-id", b"req_b")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for event in STREAM:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default="sk-bench")
    args = parser.parse_args()
    uvicorn.run(
        app_for(args.key),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=300,  # the bench's connections idle while the other variant runs
    )


if __name__ == "__main__":
    main()
