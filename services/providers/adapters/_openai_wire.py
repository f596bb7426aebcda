"""The OpenAI chat-completions wire format, shared by GPT-5 and DashScope's compatible mode.

`OpenAICompatibleChat` sends `POST {base}/chat/completions` and reads either the JSON answer or
the server-sent events (`data: <chunk>` ... `data: [DONE]`), tolerating unknown fields such as
OpenAI's `obfuscation` and surfacing a mid-stream `data: {"error": ...}` as an error. Subclasses
choose the upstream and shape the body (GPT-5 and qwen-plus differ on tokens and content).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Any

from services.common.errors import InvalidArgument, ProviderFailed, ServiceError
from services.providers.adapter import Adapter
from services.providers.images import sniff_mime
from services.providers.sse import sse_batches
from services.providers.types import ChatDelta, ChatImage, ChatMessage, ChatResult, ChatSpec, Usage
from services.providers.upstream import RateLimited, Upstream

log = logging.getLogger("imagemesh.providers.chat")

ROLES = ("system", "developer", "user", "assistant", "tool")
DETAILS = ("", "auto", "low", "high")
# Request fields the adapter owns; `extra` cannot override them.
RESERVED = frozenset({"model", "messages", "stream", "stream_options"})


def image_url(image: ChatImage, where: str) -> dict[str, Any]:
    """An `image_url` part value: http(s) and data: URLs as given, bare base64 wrapped in a
    data: URL of its sniffed type (seed 000 adds the prefix for the caller)."""
    url = image.url.strip()
    if image.detail not in DETAILS:
        raise InvalidArgument(f"{where}.detail: {image.detail!r}; use auto, low or high")
    if not url:
        raise InvalidArgument(f"{where}: empty image URL")
    if not url.startswith(("http://", "https://", "data:")):
        try:
            head = base64.b64decode(url[:64] + "=" * (-len(url[:64]) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgument(
                f"{where}: not an http(s) URL, a data: URL or base64 image data"
            ) from exc
        url = f"data:{sniff_mime(head) or 'image/png'};base64,{url}"
    value: dict[str, Any] = {"url": url}
    if image.detail:
        value["detail"] = image.detail
    return value


def wire_messages(spec: ChatSpec, *, images: bool) -> list[dict[str, Any]]:
    """The request's messages; content as parts (`images=True`) or one string (text-only)."""
    messages = spec.all_messages()
    if not messages:
        raise InvalidArgument("give messages, or a prompt and/or images")
    out = []
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidArgument(
                f"messages[{i}].role: {message.role!r}; use one of {', '.join(ROLES)}"
            )
        out.append({"role": message.role, "content": _content(message, i, images, spec.model)})
    return out


def _content(message: ChatMessage, i: int, images: bool, model: str) -> str | list[dict]:
    if not images:
        if any(p.image is not None for p in message.parts):
            raise InvalidArgument(f"messages[{i}]: {model} is text-only; send no images")
        return message.text
    if all(p.image is None for p in message.parts):
        return message.text
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.image is not None:
            where = f"messages[{i}].content[{j}].image"
            parts.append({"type": "image_url", "image_url": image_url(part.image, where)})
        elif part.text:
            parts.append({"type": "text", "text": part.text})
    return parts


def usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        total_tokens=int(data.get("total_tokens") or 0),
    )


def stream_error(upstream: Upstream, error: Any) -> ServiceError:
    """The error a `data: {"error": ...}` event stands for."""
    err = error if isinstance(error, dict) else {"message": str(error)}
    message = str(err.get("message") or "the stream was interrupted").strip()
    code = str(err.get("code") or err.get("type") or "").lower()
    if "rate_limit" in code or "throttl" in code:
        return RateLimited(f"{upstream.label} rate limit: {message}")
    if "inspection" in code or "content_filter" in code or "invalid" in code:
        return InvalidArgument(f"{upstream.label} rejected the request: {message}")
    return ProviderFailed(f"{upstream.label} failed mid-stream: {message}")


def delta_of(chunk: dict[str, Any]) -> ChatDelta | None:
    """The delta of one `chat.completion.chunk` (choice 0); None when it carries nothing."""
    delta = ChatDelta(model=chunk.get("model") or "", id=chunk.get("id") or "")
    delta.usage = usage_from(chunk.get("usage"))
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        content = choice.get("delta") or {}
        delta.text = content.get("content") or ""
        delta.reasoning = content.get("reasoning_content") or ""
        delta.finish_reason = choice.get("finish_reason") or ""
    if delta.text or delta.reasoning or delta.finish_reason or delta.usage:
        return delta
    return None


def merge_into(merged: ChatDelta, delta: ChatDelta) -> bool:
    """Appends `delta` to `merged`; False (nothing changed) when reasoning would follow text in
    one piece, which would lose their order."""
    if delta.reasoning and merged.text:
        return False
    merged.text += delta.text
    merged.reasoning += delta.reasoning
    merged.finish_reason = delta.finish_reason or merged.finish_reason
    merged.usage = delta.usage or merged.usage
    merged.model = merged.model or delta.model
    merged.id = merged.id or delta.id
    return True


class OpenAICompatibleChat(Adapter):
    """Chat and ChatStream over `POST /chat/completions`; subclasses give `upstream`/`body`."""

    kind = "chat"
    path = "/chat/completions"

    def upstream(self) -> Upstream:
        raise NotImplementedError

    def body(self, spec: ChatSpec) -> dict[str, Any]:
        raise NotImplementedError

    def _request(self, spec: ChatSpec, stream: bool) -> dict[str, Any]:
        body = {k: v for k, v in spec.extra.items() if k not in RESERVED}
        body.update(self.body(spec))
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def chat(self, spec: ChatSpec) -> ChatResult:
        upstream = self.upstream()
        data = await upstream.json("POST", self.path, json=self._request(spec, stream=False))
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise ProviderFailed(f"{upstream.label} answered without choices: {str(data)[:200]}")
        message = choices[0].get("message") or {}
        return ChatResult(
            text=message.get("content") or "",
            reasoning=message.get("reasoning_content") or "",
            model=data.get("model") or spec.model,
            id=data.get("id") or "",
            usage=usage_from(data.get("usage")),
            finish_reason=choices[0].get("finish_reason") or "",
            stream=False,
        )

    async def chat_stream(self, spec: ChatSpec) -> AsyncIterator[ChatDelta]:
        upstream = self.upstream()
        response = await upstream.open_stream(
            "POST", self.path, json=self._request(spec, stream=True)
        )
        try:
            async for events in sse_batches(response, upstream, stream_error):
                # The chunks one read brought go on as one: the caller gets the same text in
                # fewer, larger pieces, and each piece costs a gRPC message and an HTTP write.
                merged: ChatDelta | None = None
                for event in events:
                    delta = delta_of(event)
                    if delta is None:
                        continue
                    if merged is not None and not merge_into(merged, delta):
                        yield merged
                        merged = None
                    merged = merged or delta
                if merged is not None:
                    yield merged
        finally:
            await response.aclose()
