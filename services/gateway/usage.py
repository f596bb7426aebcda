"""What an OpenAI-shaped answer says about its images beside `data`: `usage` in OpenAI's shape
(token counts from the model server, `tokens.py` there says what each counts) next to our pixel
fields, and the echo of the options (`output_format`, `size`, `quality`, `background`) with the
values OpenAI's published schema allows."""

from __future__ import annotations

from typing import Any

from services.gateway.outcome import Outcome

# OpenAI's enums: `size` of ImagesResponse, and of the stream events (which add auto).
OPENAI_SIZES = frozenset({"1024x1024", "1024x1536", "1536x1024"})
ANSWER_QUALITIES = frozenset({"low", "medium", "high"})


def openai_usage(outcome: Outcome) -> dict[str, Any]:
    tokens = outcome.tokens
    given = tokens.input_text + tokens.input_image
    return {
        "input_tokens": given,
        "output_tokens": tokens.output,
        "total_tokens": given + tokens.output,
        "input_tokens_details": {
            "text_tokens": tokens.input_text,
            "image_tokens": tokens.input_image,
        },
        "width": outcome.width,
        "height": outcome.height,
        "image_count": len(outcome.images),
    }


def size_name(width: int, height: int, allow_auto: bool) -> str | None:
    """`WxH` when OpenAI's enum has it, else auto (stream events) or None (left out)."""
    name = f"{width}x{height}"
    if name in OPENAI_SIZES:
        return name
    return "auto" if allow_auto else None


def background(outcome: Outcome) -> str:
    """What the pictures have: opaque, unless a hosted model was asked for transparent."""
    return "transparent" if outcome.output.background == "transparent" else "opaque"


def openai_fields(outcome: Outcome) -> dict[str, Any]:
    """ImagesResponse's optional fields, each only with a value its enum allows."""
    fields: dict[str, Any] = {
        "output_format": outcome.output_format,
        "background": background(outcome),
    }
    size = size_name(outcome.width, outcome.height, allow_auto=False)
    if size is not None:
        fields["size"] = size
    if outcome.output.quality in ANSWER_QUALITIES:
        fields["quality"] = outcome.output.quality
    return fields
