"""GPT-5 chat (`openai-gpt5`, seed 000): messages or system_prompt + prompt, images, streaming.

GPT-5 takes `max_completion_tokens` (it rejects `max_tokens`, and the budget includes reasoning
tokens) and only the default temperature 1: the seed's examples send 0.7, which the API answers
with a 400, so any other temperature is dropped (and logged) rather than failing the call.
Other GPT-5 knobs (`reasoning_effort`, `verbosity`) pass through `extra`.
"""

from __future__ import annotations

import logging
from typing import Any

from services.providers.adapters._openai_http import openai_missing, openai_upstream
from services.providers.adapters._openai_wire import OpenAICompatibleChat, wire_messages
from services.providers.registry import register_adapter
from services.providers.types import ChatSpec
from services.providers.upstream import Upstream

log = logging.getLogger("imagemesh.providers.openai")


@register_adapter("openai-gpt5")
class OpenAIChat(OpenAICompatibleChat):
    provider = "openai"
    models = ("gpt-5",)

    def missing_config(self) -> str | None:
        return openai_missing(self.env)

    def upstream(self) -> Upstream:
        return openai_upstream(self.env)

    def body(self, spec: ChatSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model, "messages": wire_messages(spec, images=True)}
        if spec.max_tokens is not None:
            body["max_completion_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            if spec.temperature == 1:
                body["temperature"] = 1
            else:
                log.info("gpt-5 accepts only temperature 1; dropped %s", spec.temperature)
        return body
