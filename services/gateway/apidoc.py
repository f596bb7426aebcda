"""The gateway's OpenAPI document (`/openapi.json`, `/docs`): every body a route reads, described as
the route really parses it, so that a reader and a generator of requests (schemathesis in
`make fuzz`) see the same shapes the gateway accepts.

Routes that parse their own body name their pydantic models (`bodies.json_body`); `install` adds
those models' schemas. Most fields need nothing more: a field declared on a request model
(`ImageKnobs`, `EditJsonRequest`, ...) appears in the document with its type and bounds. Fields
the models type loosely get their real shape here:

- `FIELDS`: `{schema name: {field: JSON schema}}`, replacing a field's schema, for fields typed
  `Any` or a free-form dict (an edit's `image`/`mask`, a task's `parameters`).
- `ONE_OF_REQUIRED`: a body needs one of these fields (chat: `messages` or `prompt`).
- `KNOBS`: shapes of knobs wherever a body has them (`size` is `WxH` or `W*H`).
- `MODEL_KINDS`: a body's `model` is one of the catalogue's names of those kinds (others: 404).
- `ROUTE_BODIES`: a route whose body is a shared model with more fields required.
- `HEADERS`: `{(method, path): [OpenAPI header parameter]}`, headers a route reads.

To add a request field: declare it on the model (the usual case, nothing to do here); if its type
is `Any` or a dict, add its shape to `FIELDS`. `EXTRA_MODELS` lists models only referenced from
`FIELDS` (a task's `parameters` are `TaskParameters`). The document is checked in tests: every
served body has a schema (tests/reliability/test_fuzz.py), and the fuzz run generates from it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.gateway.bodies import schema_ref
from services.gateway.catalog import Catalog
from services.gateway.sizes import ASPECT_RATIOS
from services.gateway.tasks.prepare import TaskParameters

# http(s) URL, data: URL or bare base64 (services/gateway/sources.py reads each).
IMAGE_TEXT: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    # Not a JSON Schema format: a generator of requests may register one (test_fuzz.py does).
    "format": "image-ref",
    "examples": ["https://example.com/cat.png", "data:image/png;base64,iVBORw0KGgo..."],
}
URL_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {"url": IMAGE_TEXT},
    "required": ["url"],
}
# OpenAI's JSON form of one image: {"image_url": "..."} or {"image_url": {"url": "..."}}.
IMAGE_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image_url": {
            "anyOf": [
                IMAGE_TEXT,
                URL_OBJECT,
            ]
        }
    },
    "required": ["image_url"],
}
ONE_IMAGE: dict[str, Any] = {"anyOf": [IMAGE_TEXT, IMAGE_OBJECT, URL_OBJECT]}
IMAGES: dict[str, Any] = {"type": "array", "items": ONE_IMAGE, "minItems": 1, "maxItems": 16}


def _parameters(without: tuple[str, ...] = ()) -> dict[str, Any]:
    """A task's `parameters`: seed 001's knobs (`TaskParameters`); a hosted model's own knobs
    pass through (additional properties)."""
    if not without:
        return schema_ref(TaskParameters)
    schema = TaskParameters.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("title", None)
    for name in without:
        schema["properties"].pop(name, None)
    schema["required"] = [name for name in schema.get("required", []) if name not in without]
    return schema


FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "EditJsonRequest": {
        "image": {
            "anyOf": [ONE_IMAGE, IMAGES],
            "description": "An image or a list of images: http(s) URL, data: URL or bare base64",
        },
        "images": {**IMAGES, "description": "OpenAI's JSON form: [{image_url: ...}]"},
        "mask": {
            "anyOf": [ONE_IMAGE, {"type": "null"}],
            "description": "Optional mask image, same forms as `image`",
        },
    },
    "TaskCreateRequest": {"parameters": _parameters()},
    # DashScope's async body keeps the prompt in `input`.
    "SynthesisRequest": {"parameters": _parameters(without=("prompt",))},
}
EXTRA_MODELS: list[type[BaseModel]] = [TaskParameters]

# A body needs one of these fields, given a value (not null, not an empty list).
ONE_OF_REQUIRED: dict[str, list[str]] = {
    "ChatCompletionRequest": ["messages", "prompt"],
    "DashScopeInput": ["messages", "prompt"],
    "EditJsonRequest": ["image", "images"],
}
# Fields a body needs though its model has a default (a task without parameters has no prompt).
REQUIRED: dict[str, list[str]] = {"TaskCreateRequest": ["parameters"]}
KNOBS: dict[str, dict[str, Any]] = {
    "size": {
        "anyOf": [{"type": "string", "pattern": r"^[1-9][0-9]{1,4}[x*][1-9][0-9]{1,4}$"}],
        "examples": ["1024x1024", "1328*1328"],
    },
    "aspect_ratio": {"anyOf": [{"type": "string", "enum": list(ASPECT_RATIOS)}]},
}
# A task names a text-to-image model, or a hosted one that edits.
TASK_KINDS = ("image", "hosted edit")
MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "OpenAIImageRequest": ("image",),
    # The sync DashScope route edits when the messages hold image parts.
    "DashScopeImageRequest": ("image", "edit"),
    "EditJsonRequest": ("edit",),
    "EditFormRequest": ("edit",),
    "LayersJsonRequest": ("layers",),
    "LayersFormRequest": ("layers",),
    "ChatCompletionRequest": ("chat",),
    "TaskCreateRequest": TASK_KINDS,
    "SynthesisRequest": TASK_KINDS,
}
MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"
# (method, path) -> (the route's own schema name, the shared one it narrows, fields it requires)
ROUTE_BODIES: dict[tuple[str, str], tuple[str, str, list[str]]] = {
    ("post", MULTIMODAL): ("DashScopeGenerationRequest", "DashScopeImageRequest", ["model"]),
}

ASYNC_HEADER: dict[str, Any] = {
    "name": "X-DashScope-Async",
    "in": "header",
    "required": True,
    "description": "DashScope's async protocol: `enable` (anything else is refused with a 403)",
    "schema": {"type": "string", "enum": ["enable"]},
}
HEADERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("post", "/api/v1/services/aigc/text2image/image-synthesis"): [ASYNC_HEADER],
}


def install(app: FastAPI, models: list[type[BaseModel]], catalog: Catalog) -> None:
    """`app.openapi()` answers FastAPI's document with `models` (and `EXTRA_MODELS`) added and
    the tables above applied, the model names taken from `catalog`."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        _, definitions = models_json_schema(
            [(model, "validation") for model in [*models, *EXTRA_MODELS]],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.get("$defs", {}))
        _shape(components, catalog)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                operation.pop("x-body-models", None)
                extra = HEADERS.get((method, path), [])
                if extra:
                    operation["parameters"] = [*operation.get("parameters", []), *extra]
                if (method, path) in ROUTE_BODIES:
                    _narrow(components, operation, *ROUTE_BODIES[(method, path)])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _shape(components: dict[str, Any], catalog: Catalog) -> None:
    for name, fields in FIELDS.items():
        properties = components.get(name, {}).get("properties", {})
        for field, shape in fields.items():
            if field in properties:
                properties[field] = {**shape, "title": properties[field].get("title", field)}
    for name, component in components.items():
        properties = component.get("properties", {})
        for field, shape in KNOBS.items():
            if field in properties:
                nullable = {"type": "null"} in properties[field].get("anyOf", [])
                anyof = [*shape["anyOf"], *([{"type": "null"}] if nullable else [])]
                properties[field] = {**properties[field], **shape, "anyOf": anyof}
        if name in ONE_OF_REQUIRED:
            component["anyOf"] = [
                {"required": [field], "properties": {field: {"not": _EMPTY}}}
                for field in ONE_OF_REQUIRED[name]
            ]
        if name in REQUIRED:
            component["required"] = sorted({*component.get("required", []), *REQUIRED[name]})
        if name in MODEL_KINDS and "model" in properties:
            names = _model_names(catalog, MODEL_KINDS[name])
            model = properties["model"]
            nullable = {"type": "null"} in model.get("anyOf", [])
            named = {"type": "string", "enum": names}
            properties["model"] = {
                **{k: v for k, v in model.items() if k not in ("anyOf", "type", "minLength")},
                **({"anyOf": [named, {"type": "null"}]} if nullable else named),
            }


# What "not given" looks like in a body: null, "" or [].
_EMPTY: dict[str, Any] = {"anyOf": [{"type": "null"}, {"const": ""}, {"const": []}]}


def _model_names(catalog: Catalog, kinds: tuple[str, ...]) -> list[str]:
    names = []
    for entry in catalog.entries:
        hosted_edit = "hosted edit" in kinds and not entry.local and "edit" in entry.kinds
        if hosted_edit or any(kind in entry.kinds for kind in kinds):
            names.append(entry.name)
    return names


def _narrow(
    components: dict[str, Any], operation: dict[str, Any], name: str, shared: str, needs: list[str]
) -> None:
    narrowed = json.loads(json.dumps(components[shared]))
    narrowed["required"] = sorted({*narrowed.get("required", []), *needs})
    for field in needs:
        shape = narrowed["properties"][field]
        if "anyOf" in shape:
            shape["anyOf"] = [option for option in shape["anyOf"] if option != {"type": "null"}]
    narrowed["title"] = name
    components[name] = narrowed
    for content in operation.get("requestBody", {}).get("content", {}).values():
        if content.get("schema") == _ref(shared):
            content["schema"] = _ref(name)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
