"""Wire models of POST /v1/chat/completions (OpenAI shape, seed 004) and their proto mapping.

Also the seed-000 shorthand: `system_prompt` + `prompt` (+ `images`) instead of `messages`.
Images in messages are passed on as given (URL, data URL or bare base64): the providers service
sends them to the hosted API. Fields we do not know (e.g. DashScope's `enable_thinking`) go to the
provider in `extra`.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from google.protobuf import struct_pb2
from imagemesh.v1 import providers_pb2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common import requestid
from services.gateway.envelope import success

# Fields of the OpenAI request that the gateway itself handles (not forwarded in `extra`).
_HANDLED = {"stream_options", "n", "user"}
INT32_MAX = 2**31 - 1


class ImageURL(BaseModel):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _filled(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs `text`")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs `image_url: {url}`")
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, examples=["qwen-plus"])
    messages: list[Message] | None = None
    system_prompt: str | None = None
    prompt: str | None = None
    images: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    # The proto field is int32.
    max_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    stream: bool = False

    @model_validator(mode="after")
    def _has_input(self) -> ChatCompletionRequest:
        if not self.messages and not (self.prompt and self.prompt.strip()):
            raise ValueError("give messages (a list of {role, content}) or a prompt")
        return self


def to_proto(request: ChatCompletionRequest, model: str) -> providers_pb2.ChatRequest:
    proto = providers_pb2.ChatRequest(
        model=model,
        system_prompt=request.system_prompt or "",
        prompt=request.prompt or "",
        images=[providers_pb2.ChatImage(url=url) for url in request.images or []],
    )
    for message in request.messages or []:
        proto.messages.append(_message(message))
    if request.temperature is not None:
        proto.temperature = request.temperature
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        proto.max_tokens = max_tokens
    extra = {k: v for k, v in (request.model_extra or {}).items() if k not in _HANDLED}
    if extra:
        struct = struct_pb2.Struct()
        struct.update(extra)
        proto.extra.CopyFrom(struct)
    return proto


def _message(message: Message) -> providers_pb2.ChatMessage:
    # A developer message is OpenAI's newer name for a system message.
    role = "system" if message.role == "developer" else message.role
    proto = providers_pb2.ChatMessage(role=role)
    if isinstance(message.content, str):
        proto.content.append(providers_pb2.ChatContentPart(text=message.content))
    for part in message.content if isinstance(message.content, list) else []:
        if part.type == "text":
            proto.content.append(providers_pb2.ChatContentPart(text=part.text or ""))
        elif part.image_url is not None:
            image = providers_pb2.ChatImage(
                url=part.image_url.url, detail=part.image_url.detail or ""
            )
            proto.content.append(providers_pb2.ChatContentPart(image=image))
    return proto


def _usage(usage: Any) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def completion(response: providers_pb2.ChatResponse, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    body = {
        "id": response.id or f"chatcmpl-{requestid.get_request_id()}",
        "object": "chat.completion",
        "model": response.model or model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": response.finish_reason or "stop"}
        ],
        "usage": _usage(response.usage),
    }
    return success(body)


class ChunkFrames:
    """One stream's `data: <chat.completion.chunk>` frames, as bytes ready to write.

    The part that stays the same over a stream (id, object, created, model) is serialised once;
    each frame adds only its delta, finish_reason and usage.
    """

    def __init__(self, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._head = b""
        self._head_of: tuple[str, str] | None = None
        self._first = True

    def frame(self, message: providers_pb2.ChatChunk) -> bytes:
        delta: dict[str, Any] = {"role": "assistant"} if self._first else {}
        if message.delta or self._first:
            delta["content"] = message.delta
        if message.reasoning:
            delta["reasoning_content"] = message.reasoning
        self._first = False
        tail = (
            f',"choices":[{{"index":0,"delta":{_json(delta)},'
            f'"finish_reason":{_json(message.finish_reason or None)}}}]'
        )
        if message.HasField("usage"):
            tail += f',"usage":{_json(_usage(message.usage))}'
        return b"".join((b"data: ", self._head_for(message), tail.encode(), b"}\n\n"))

    def _head_for(self, message: providers_pb2.ChatChunk) -> bytes:
        key = (message.id, message.model)
        if key != self._head_of:
            head = {
                "id": message.id or f"chatcmpl-{requestid.get_request_id()}",
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": message.model or self._model,
            }
            self._head, self._head_of = _json(head)[:-1].encode(), key
        return self._head


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def event(data: dict[str, Any]) -> bytes:
    """A server-sent event of any JSON object (the error envelope that ends a stream)."""
    return f"data: {_json(data)}\n\n".encode()


def now() -> int:
    return int(time.time())
