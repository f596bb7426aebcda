"""The `lora` field of image requests: which LoRA adapters a local model applies, and how much.

`lora` is `{"name": ..., "scale": ...}` or a list of them (OpenAI-shaped generations and edits
at the top level, DashScope's in `parameters`, tasks in `parameters` too). A multipart form sends
the same as a JSON string; a bare name (`"lora": "tiny-a"`) is the adapter at scale 1. Names are
the adapters `GET /v1/models` lists under the model (`loras`); the model server checks them (404
naming an unknown one and listing the available, 400 for a scale outside 0..2 or more than its
`MAX_LORAS_PER_REQUEST`, 503 for an adapter whose file does not load). Hosted models take no
adapters: a `lora` for one is a 400 saying so, never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from imagemesh.v1 import common_pb2
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.gateway.catalog import Entry
from services.gateway.errors import invalid

MAX_SCALE = 2.0


class LoraChoice(BaseModel):
    """One adapter of a request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["tiny-a"])
    scale: float | None = Field(default=None, ge=0, le=MAX_SCALE, description="0..2; unset: 1")


def _as_list(value: Any) -> Any:
    """One adapter or several, as a list; a string is JSON (multipart forms) or a bare name."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] in "[{":
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(
                    'not valid JSON; send {"name": ..., "scale": ...} or a list of them'
                ) from None
        else:
            return [{"name": text}]
    if isinstance(value, dict):
        return [value]
    if value is not None and not isinstance(value, list):
        raise ValueError('send {"name": ..., "scale": ...}, a list of them, or an adapter name')
    return value


def _documented_forms(schema: dict[str, Any]) -> None:
    """The schema says what `_as_list` takes: one adapter, a name or JSON text, or a list."""
    options = schema.get("anyOf", [])
    array = next((option for option in options if option.get("type") == "array"), None)
    if array is not None:
        text = {"type": "string", "description": "an adapter name, or the field as JSON"}
        options[0:0] = [array["items"], text]


LoraField = Annotated[
    list[LoraChoice] | None,
    BeforeValidator(_as_list),
    Field(
        default=None,
        description='LoRA adapters of a local model: {"name", "scale"} or a list of them '
        "(GET /v1/models lists each model's `loras`)",
        examples=[{"name": "tiny-a", "scale": 0.8}],
        json_schema_extra=_documented_forms,
    ),
]


def check_loras(loras: Sequence[LoraChoice], entry: Entry, prefix: str = "") -> None:
    """A `lora` is for local models only: a 400 naming the field for a hosted one."""
    if loras and not entry.local:
        raise invalid(
            f"{prefix}lora: {entry.name} is a hosted model and takes no LoRA adapters; "
            "the local models do (GET /v1/models lists their loras)",
            f"{prefix}lora",
        )


def lora_refs(loras: Sequence[LoraChoice]) -> list[common_pb2.LoraRef]:
    """The adapters as the model servers' `loras` field."""
    refs = []
    for choice in loras:
        ref = common_pb2.LoraRef(name=choice.name)
        if choice.scale is not None:
            ref.scale = choice.scale
        refs.append(ref)
    return refs
