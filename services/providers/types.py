"""Plain request and result types the adapters take and return (no protobuf, no HTTP).

The servicer maps the gRPC messages to these; adapters (built-in or plug-in) only see these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChatImage:
    """An image in a chat message: http(s) URL, data: URL, or bare base64 (prefix added)."""

    url: str
    detail: str = ""


@dataclass
class ChatPart:
    text: str | None = None
    image: ChatImage | None = None


@dataclass
class ChatMessage:
    role: str
    parts: list[ChatPart] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.text is not None)


@dataclass
class ChatSpec:
    """A chat request: `messages`, or `system_prompt` + `prompt` (+ `images`), as seed 000."""

    model: str
    messages: list[ChatMessage] = field(default_factory=list)
    system_prompt: str = ""
    prompt: str = ""
    images: list[ChatImage] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def all_messages(self) -> list[ChatMessage]:
        """`messages` when given, else the seed's shorthand turned into messages."""
        if self.messages:
            return self.messages
        out: list[ChatMessage] = []
        if self.system_prompt:
            out.append(ChatMessage("system", [ChatPart(text=self.system_prompt)]))
        parts = [ChatPart(text=self.prompt)] if self.prompt else []
        parts += [ChatPart(image=img) for img in self.images]
        if parts:
            out.append(ChatMessage("user", parts))
        return out


@dataclass
class Usage:
    width: int = 0
    height: int = 0
    image_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass
class ChatResult:
    text: str
    model: str
    id: str = ""
    usage: Usage | None = None
    finish_reason: str = ""
    stream: bool = False
    reasoning: str = ""


@dataclass
class ChatDelta:
    """One piece of a streamed answer; the last ones carry `finish_reason` and `usage`."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str = ""
    usage: Usage | None = None
    model: str = ""
    id: str = ""


@dataclass
class ImageInput:
    """An input image: its bytes, or a URL (http(s) or data:)."""

    data: bytes = b""
    url: str = ""


@dataclass
class ImageSpec:
    """A text-to-image (or image-to-image) request; 0 / empty means the provider's default."""

    model: str
    prompt: str
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    n: int = 0
    seed: int | None = None
    steps: int = 0
    guidance_scale: float | None = None
    images: list[ImageInput] = field(default_factory=list)
    prompt_extend: bool = False
    watermark: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EditSpec:
    """A batch edit as seed 000: one edit per image, optional masks and per-image prompts."""

    model: str
    images: list[ImageInput]
    masks: list[ImageInput] = field(default_factory=list)
    prompt: str = ""
    prompts: list[str] = field(default_factory=list)
    n: int = 0
    size: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Image:
    data: bytes
    mime_type: str = "image/png"
    width: int = 0
    height: int = 0
    seed: int = 0


@dataclass
class ImageGroup:
    """The images made from one input (or one generation: original_index 0)."""

    images: list[Image]
    original_index: int = 0
    prompt: str = ""
    actual_prompt: str = ""
    created: int = 0


@dataclass
class ImagesResult:
    results: list[ImageGroup]
    model: str
    created: int = 0
    total_images: int = 0
    images_per_edit: int = 0
    usage: Usage | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ModelInfo:
    name: str
    provider: str
    task_type: str
    kind: str
    ready: bool
    reason: str = ""
    capabilities: list[str] = field(default_factory=list)
