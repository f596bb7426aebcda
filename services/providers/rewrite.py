"""prompt_extend (seed 002): a chat model polishes an image prompt before generation.

Chinese prompts are polished in Chinese, any other in English, as Qwen-Image's own
`polish_prompt_zh` / `polish_prompt_en` do. Rewriting never fails a request: when no rewrite
model is configured, its provider has no key, or the call fails, the answer is the prompt as
given with `rewritten=False` and the reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from services.common.errors import ServiceError
from services.providers.deadline import deadline_in
from services.providers.registry import Registry
from services.providers.types import ChatMessage, ChatPart, ChatSpec

log = logging.getLogger("imagemesh.providers.rewrite")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_QUOTES = ('"', "'", "“", "”", "「", "」", "`")

SYSTEM_ZH = (
    "你是图像生成提示词优化师。把用户的提示词改写成一段完整、具体、富有画面感的中文描述，"
    "用于文生图模型：保留原意和所有关键元素，补充主体、外观、动作、场景、光线、构图与风格等细节；"
    "画面中要出现的文字用引号原样保留；不要添加与原意冲突的内容。只输出改写后的提示词，不要解释。"
)
SYSTEM_EN = (
    "You are a prompt optimizer for a text-to-image model. Rewrite the user's prompt into one "
    "complete, specific, vivid English description: keep its meaning and every key element, and "
    "add concrete details of subject, appearance, action, setting, lighting, composition and "
    "style. Keep any text that must appear in the image verbatim, in quotes. Add nothing that "
    "contradicts the prompt. Output only the rewritten prompt, with no explanation."
)


@dataclass
class Rewrite:
    orig_prompt: str
    actual_prompt: str
    rewritten: bool
    model: str = ""
    language: str = "en"
    reason: str = ""


def language_of(prompt: str) -> str:
    """ "zh" when the prompt contains Chinese characters, "en" otherwise."""
    return "zh" if _CJK.search(prompt) else "en"


def _clean(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


class PromptRewriter:
    def __init__(self, registry: Registry, model: str = "qwen-plus", timeout: float = 30.0) -> None:
        self.registry = registry
        self.model = model
        self.timeout = timeout

    async def rewrite(self, prompt: str, model: str = "") -> Rewrite:
        """The polished prompt, or the prompt as given and why; never raises."""
        model = model or self.model
        language = language_of(prompt)
        original = Rewrite(prompt, prompt, False, "", language)
        if not prompt.strip():
            original.reason = "the prompt is empty"
            return original
        if not model:
            original.reason = "no rewrite model is configured (PROVIDERS_REWRITE_MODEL)"
            return original
        system = SYSTEM_ZH if language == "zh" else SYSTEM_EN
        spec = ChatSpec(
            model=model,
            messages=[
                ChatMessage("system", [ChatPart(text=system)]),
                ChatMessage("user", [ChatPart(text=prompt)]),
            ],
        )
        try:
            adapter = self.registry.ready_adapter_for(model, "chat")
            with deadline_in(self.timeout):
                result = await adapter.chat(spec)
        except ServiceError as exc:
            log.warning("prompt not rewritten with %s: %s", model, exc.message)
            original.reason = exc.message
            return original
        except Exception as exc:  # rewriting must never fail the request
            log.exception("prompt rewrite with %s failed", model)
            original.reason = f"the rewrite with {model} failed ({type(exc).__name__})"
            return original
        text = _clean(result.text)
        if not text:
            original.reason = f"{model} answered an empty rewrite"
            return original
        return Rewrite(prompt, text, True, model, language)
