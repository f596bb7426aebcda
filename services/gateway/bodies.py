"""Reading request bodies: JSON objects with a clear 400 when malformed, and the OpenAPI schema of
endpoints that read their own body (so /docs still shows every accepted shape)."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from services.gateway.errors import ApiError, invalid


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
        data = json.loads(raw)
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
    return data


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
    """`openapi_extra` for a route that parses its own body; `app.docs` adds the schemas."""
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
