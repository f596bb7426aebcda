"""A local OpenAI API: chat completions (GPT-5 rules, SSE) and gpt-image-1 generations / edits.

Follows shared/protocols/openai.md: Bearer auth (401 `invalid_api_key`), `{"error": {message,
type, param, code}}` errors with an `x-request-id` header on every answer, GPT-5's 400s for
`max_tokens` and a temperature other than 1, content as a string or text / image_url parts, SSE
chunks with `obfuscation`, a usage chunk with `choices: []` and `data: [DONE]`, an optional
mid-stream `data: {"error": ...}`; images answered as `b64_json` PNGs only, `response_format`
rejected, multipart edits with `image` or `image[]` typed image/png|jpeg|webp.

    fake = FakeOpenAI(api_key="sk-test").start()
    fake.base_url  # -> http://127.0.0.1:<port>/v1, for OPENAI_BASE_URL
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.base import FakeProvider, Received
from tests.fakes.pngs import noise_png, png

ROLES = ("system", "developer", "user", "assistant", "tool")
SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}


class FakeOpenAI(FakeProvider):
    def __init__(self, api_key: str = "sk-test-openai") -> None:
        self.api_key = api_key
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/images/generations", self.generations, methods=["POST"]),
                Route("/v1/images/edits", self.edits, methods=["POST"]),
            ]
        )

    def env(self) -> dict[str, str]:
        """The providers service's settings for this fake."""
        return {"OPENAI_API_KEY": self.api_key, "OPENAI_BASE_URL": self.base_url}

    def reset(self) -> None:
        super().reset()
        self.reply: str | None = None  # fixed answer text; None echoes the last user message
        self.stream_error_after: int | None = None  # content chunks before a mid-stream error
        self.noisy_images = False  # answer incompressible images (about 3 MB at 1024x1024)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- shapes --------------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str, path: str = "") -> Response:
        return self._error(status, message or _default_message(status), code or None)

    def _error(
        self, status: int, message: str, code: str | None, param: str | None = None
    ) -> Response:
        body = {
            "error": {
                "message": message,
                "type": ERROR_TYPES.get(status, "invalid_request_error"),
                "param": param,
                "code": code,
            }
        }
        return JSONResponse(body, status, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

    def _json(self, body: dict[str, Any]) -> Response:
        return JSONResponse(body, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

    async def _begin(self, request: Request) -> tuple[Received, Response | None]:
        received = await self.record(request)
        auth = received.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")[:8] or "(none)"
            return received, self._error(
                401, f"Incorrect API key provided: {shown}***.", "invalid_api_key"
            )
        return received, await self.injected(received.path)

    # -- chat ----------------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        body = received.body if isinstance(received.body, dict) else {}
        if "max_tokens" in body:
            return self._error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "unsupported_parameter",
                "max_tokens",
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return self._error(
                400,
                f"Unsupported value: 'temperature' does not support {temperature} with this "
                "model. Only the default (1) value is supported.",
                "unsupported_value",
                "temperature",
            )
        problem = _check_messages(body.get("messages"))
        if problem:
            return self._error(400, problem[1], "invalid_value", problem[0])
        text = self.reply if self.reply is not None else _echo(body["messages"])
        usage = {
            "prompt_tokens": 12,
            "completion_tokens": len(text.split()),
            "total_tokens": 12 + len(text.split()),
        }
        model = f"{body.get('model', 'gpt-5')}-2025-08-07"
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._chunks(text, model, usage if include else None),
                media_type="text/event-stream",
                headers={"x-request-id": f"req_{uuid.uuid4().hex}"},
            )
        return self._json(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": None,
            }
        )

    async def _chunks(
        self, text: str, model: str, usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        extra: dict[str, Any] = {"usage": None} if usage is not None else {}

        def event(choices: list[dict[str, Any]], **more: Any) -> bytes:
            data = {**base, "choices": choices, **extra, **more}
            return f"data: {json.dumps(data)}\n\n".encode()

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        yield event(
            [choice({"role": "assistant", "content": "", "refusal": None})], obfuscation="k3"
        )
        words = text.split(" ")
        for i, word in enumerate(words):
            if self.stream_error_after is not None and i >= self.stream_error_after:
                error = {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
                yield f"data: {json.dumps({'error': error})}\n\n".encode()
                return
            piece = word if i == 0 else f" {word}"
            yield event([choice({"content": piece})], obfuscation="x9")
        yield event([choice({}, "stop")])
        if usage is not None:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # -- images --------------------------------------------------------------------------------

    def _image_fields(self, fields: dict[str, Any]) -> Response | None:
        if "response_format" in fields:
            return self._error(
                400, "Unknown parameter: 'response_format'.", "unknown_parameter", "response_format"
            )
        if not str(fields.get("prompt") or "").strip():
            return self._error(
                400, "Missing required parameter: 'prompt'.", "missing_required_parameter", "prompt"
            )
        try:
            n = int(fields.get("n", 1))
        except ValueError:
            n = 0
        if not 1 <= n <= 10:
            return self._error(
                400, f"Invalid 'n': {fields.get('n')}. Expected 1 to 10.", "invalid_value", "n"
            )
        if str(fields.get("size", "auto")) not in SIZES:
            return self._error(
                400,
                f"Invalid value: '{fields.get('size')}'. Supported values are: "
                "'1024x1024', '1024x1536', '1536x1024', and 'auto'.",
                "invalid_value",
                "size",
            )
        return None

    def _images_answer(self, fields: dict[str, Any]) -> Response:
        size = str(fields.get("size", "auto"))
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        digest = hashlib.sha1(str(fields.get("prompt")).encode()).digest()
        if self.noisy_images:
            data = noise_png(width, height, digest[0])
        else:
            data = png(width, height, (digest[0], digest[1], digest[2]))
        n = int(fields.get("n", 1))
        return self._json(
            {
                "created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(data).decode()} for _ in range(n)],
                "background": "opaque",
                "output_format": "png",
                "quality": "high",
                "size": f"{width}x{height}",
                "usage": {
                    "total_tokens": 100 * n + 20,
                    "input_tokens": 20,
                    "output_tokens": 100 * n,
                    "input_tokens_details": {"text_tokens": 20, "image_tokens": 0},
                },
            }
        )

    async def generations(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        fields = received.body if isinstance(received.body, dict) else {}
        return self._image_fields(fields) or self._images_answer(fields)

    async def edits(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self._error(400, "Edits take multipart/form-data.", "invalid_value")
        images = received.files.get("image", []) + received.files.get("image[]", [])
        if not images:
            return self._error(
                400, "Missing required parameter: 'image'.", "missing_required_parameter", "image"
            )
        for i, (_, content_type, _data) in enumerate(images):
            if content_type not in IMAGE_TYPES:
                return self._error(
                    400,
                    f"Invalid file 'image': unsupported mimetype ('{content_type}'). Supported "
                    "file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
                    "unsupported_file_mimetype",
                    f"image[{i}]",
                )
        for _, content_type, _data in received.files.get("mask", []):
            if content_type != "image/png":
                return self._error(
                    400, "Invalid file 'mask': must be a PNG.", "invalid_value", "mask"
                )
        fields = dict(received.body or {})
        return self._image_fields(fields) or self._images_answer(fields)


def _default_message(status: int) -> str:
    return {
        429: "Rate limit reached for requests. Please try again in 1s.",
        500: "The server had an error while processing your request. Sorry about that!",
        503: "The engine is currently overloaded, please try again later.",
    }.get(status, f"error {status}")


def _check_messages(messages: Any) -> tuple[str, str] | None:
    """(param, message) of the first invalid message, or None."""
    if not isinstance(messages, list) or not messages:
        return (
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{i}].role", f"Invalid value for 'messages[{i}].role'."
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return f"messages[{i}].content", "Invalid type for content: expected a string or array."
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image_url":
                image = part.get("image_url") or {}
                url = str(image.get("url", ""))
                if not url.startswith(("http://", "https://", "data:image/")):
                    return f"{where}.image_url.url", f"Invalid image URL in '{where}'."
                if image.get("detail", "auto") not in ("auto", "low", "high"):
                    return f"{where}.image_url.detail", f"Invalid 'detail' in '{where}'."
                continue
            return where, f"Invalid content part type in '{where}'."
    return None


def _echo(messages: list[dict[str, Any]]) -> str:
    """`You said: <last user text> (N images)`: proves the text and images arrived."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
    content = last.get("content")
    if isinstance(content, str):
        return f"You said: {content}"
    texts = [p["text"] for p in content if p.get("type") == "text"]
    images = sum(1 for p in content if p.get("type") == "image_url")
    return f"You said: {' '.join(texts)} ({images} images)"
