"""Reading request bodies: JSON objects with a clear 400 when malformed, and the OpenAPI schema of
endpoints that read their own body (so /docs still shows every accepted shape).

Every JSON body of the gateway is parsed here, so the values no later step can carry are refused
here, naming the field: NaN and Infinity (not JSON; answers could never be encoded again),
integers past a double (a protobuf Struct holds doubles) and nesting deeper than `MAX_DEPTH`
(the gRPC services' protobuf decoders stop at a few dozen levels)."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from services.gateway.errors import ApiError, invalid
from services.gateway.validation import field_name


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object. The body cap is enforced by the middleware while this reads."""
    # Any other content type is read as JSON: `curl -d '{...}'` says form-urlencoded.
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise ApiError(
            415, f"{request.url.path} takes a JSON body (Content-Type: application/json)"
        )
    raw = await request.body()
    if not raw.strip():
        raise invalid("the body is empty; send a JSON object", None)
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise invalid(f"the body must be a JSON object, not a JSON {type(data).__name__}", None)
    return data


def parse_json(raw: bytes) -> Any:
    """JSON bytes -> Python values, or a 400 saying what is wrong with them."""
    try:
        data = json.loads(raw, parse_constant=_NonFinite)
    except UnicodeDecodeError:
        raise invalid("the body is not UTF-8 JSON", None) from None
    except json.JSONDecodeError as exc:
        raise invalid(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", None
        ) from None
    except RecursionError:
        raise invalid("the body is not valid JSON: nested too deeply", None) from None
    except ValueError:
        # Python refuses integers of more than 4300 digits (a guard against slow int parsing).
        raise invalid("the body is not valid JSON: a number has too many digits", None) from None
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(data):
        # "\ud800" parses to a string no UTF-8 encoder accepts: every later step (protobuf, the
        # answer echoing the field) would fail on it.
        raise invalid("the body is not valid JSON: a string holds an unpaired \\u surrogate", None)
    _check_values(data, ())
    return data


# Levels of objects and lists, the body itself counted: a Struct this deep still decodes in the
# services behind (protobuf's decoders stop near 35 levels of Struct).
MAX_DEPTH = 24


class _NonFinite(str):
    """`NaN`, `Infinity` or `-Infinity` as json.loads met it; refused once its place is known."""


def _check_values(value: Any, path: tuple[str | int, ...]) -> None:
    if len(path) >= MAX_DEPTH and isinstance(value, (dict, list)):
        raise invalid(
            f"{field_name(path)}: nested more than {MAX_DEPTH} levels deep; flatten it",
            field_name(path),
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, (*path, index))
    elif isinstance(value, _NonFinite):
        raise invalid(
            f"{field_name(path)} must be a finite number (got {value}, which JSON does not allow)",
            field_name(path),
        )
    elif _past_a_double(value):
        raise invalid(
            f"{field_name(path)}: the number is too large (at most about 1.8e308)", field_name(path)
        )


def _past_a_double(value: Any) -> bool:
    # json.loads reads 1e400 as inf, and 1 followed by 400 zeros as an int no double holds.
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _DOUBLE_MAX


_DOUBLE_MAX = int(sys.float_info.max)


# A \uD800-\uDFFF escape; the body is checked further only when one appears (emoji escapes do).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_body(*models: type[BaseModel], multipart: type[BaseModel] | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route that parses its own body; `apidoc.install` adds the schemas."""
    schema: dict[str, Any] = (
        schema_ref(models[0]) if len(models) == 1 else {"oneOf": [schema_ref(m) for m in models]}
    )
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if multipart is not None:
        content["multipart/form-data"] = {"schema": schema_ref(multipart)}
    return {
        "requestBody": {"required": True, "content": content},
        "x-body-models": [m.__name__ for m in (*models, *([multipart] if multipart else []))],
    }
