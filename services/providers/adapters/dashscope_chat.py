"""qwen-plus chat over DashScope's OpenAI-compatible mode (`dashscope-qwen-chat`).

Same wire as OpenAI, with these differences: `max_tokens` (not `max_completion_tokens`), any
`temperature` 0-2, string content (qwen-plus is text-only), and extra fields such as
`enable_thinking` pass through `extra` (reasoning then streams as `reasoning`).
"""

from __future__ import annotations

from typing import Any

from services.common.errors import InvalidArgument
from services.providers.adapters._dashscope import (
    COMPATIBLE,
    dashscope_missing,
    dashscope_upstream,
)
from services.providers.adapters._openai_wire import OpenAICompatibleChat, wire_messages
from services.providers.registry import register_adapter
from services.providers.types import ChatSpec
from services.providers.upstream import Upstream


@register_adapter("dashscope-qwen-chat")
class QwenChat(OpenAICompatibleChat):
    provider = "dashscope"
    models = ("qwen-plus",)
    path = f"{COMPATIBLE}/chat/completions"

    def missing_config(self) -> str | None:
        return dashscope_missing(self.env)

    def upstream(self) -> Upstream:
        return dashscope_upstream(self.env)

    def body(self, spec: ChatSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model, "messages": wire_messages(spec, images=False)}
        if spec.max_tokens is not None:
            body["max_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            if not 0 <= spec.temperature < 2:
                raise InvalidArgument(f"temperature: {spec.temperature}; qwen-plus takes 0 to <2")
            body["temperature"] = spec.temperature
        return body
