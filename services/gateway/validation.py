"""Pydantic validation errors, rewritten as one sentence per field that says what is allowed.

n must be between 1 and 10 (got 99); response_format must be one of 'url', 'b64_json' (got 'gif')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.gateway.apierror import invalid

M = TypeVar("M", bound=BaseModel)

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
}


def field_name(loc: Sequence[Any]) -> str:
    """("body", "input", "messages", 0, "content") -> "input.messages[0].content"."""
    parts: list[str] = []
    for item in loc:
        if item == "body" and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def sentence(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    field = field_name(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    got = f" (got {_shown(error['input'])})" if "input" in error else ""
    if kind == "missing":
        return f"{field} is required"
    if kind == "json_invalid":
        return f"the body is not valid JSON: {ctx.get('error', 'syntax error')}"
    if kind in _TYPE_NAMES:
        return f"{field} must be {_TYPE_NAMES[kind]}{got}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        ops = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }
        bound = next(iter(ctx.values()), "?")
        return f"{field} must be {ops[kind]} {bound}{got}"
    if kind == "literal_error" or kind == "enum":
        return f"{field} must be {ctx.get('expected', 'one of the allowed values')}{got}"
    if kind in ("string_too_short", "too_short"):
        return (
            f"{field} must not be empty{got}"
            if ctx.get("min_length") == 1
            else (f"{field} must have at least {ctx.get('min_length')} items{got}")
        )
    if kind in ("string_too_long", "too_long"):
        return f"{field} must have at most {ctx.get('max_length')} characters or items"
    if kind == "value_error":
        return f"{field}: {str(error.get('msg', '')).removeprefix('Value error, ')}"
    return f"{field}: {error.get('msg', 'invalid value')}{got}"


def explain(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """(message for every error, the first field) of a list of pydantic errors."""
    if not errors:
        return "invalid request", None
    sentences = list(dict.fromkeys(sentence(dict(e)) for e in errors))
    first = errors[0]
    param = None if first.get("type") == "json_invalid" else field_name(first.get("loc", ()))
    return "; ".join(sentences[:5]), param


def parse(model: type[M], data: Any) -> M:
    """Validates `data` into `model`, raising the 400 envelope on failure."""
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object", None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = explain(exc.errors(include_url=False))  # type: ignore[arg-type]
        raise invalid(message, param) from None
