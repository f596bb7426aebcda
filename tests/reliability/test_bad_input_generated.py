"""Property-based bad input, generated from the OpenAPI schema the gateway serves.

For every JSON request body the schema documents, hypothesis starts from a valid, cheap request
(64x64, 2 steps) and breaks it one way: a field given a value its schema refuses, a required field
left out, or the whole body replaced by another JSON value. Each such request must be refused
with a 4xx envelope. Requests that stay within the schema (a string field given any text) may
succeed; they must still never be a 5xx. Multipart edits get random form fields, and the task
routes random ids. Runs are derandomized (the same examples every run) and bounded by
`max_examples`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.app import build_app
from services.gateway.settings import GatewaySettings
from tests.reliability.answers import assert_answered, assert_refusal
from tests.reliability.corpus import (
    ASYNC,
    CHAT_OK,
    DS_OK,
    EDITS,
    LAYERS_OK,
    NOT_AN_IMAGE,
    OK,
    SYNTH,
    SYNTH_OK,
    TASK_OK,
    TASKS,
)
from tests.support.hosted import Hosted

EXAMPLES = 25
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# A valid, cheap body for every request schema the gateway documents (by schema name). An edit's
# image is never readable, so no edit runs whatever else a mutation leaves valid.
BASES: dict[str, dict[str, Any]] = {
    "OpenAIImageRequest": OK,
    "DashScopeImageRequest": DS_OK,
    "DashScopeGenerationRequest": DS_OK,
    "EditJsonRequest": {**OK, "image": NOT_AN_IMAGE},
    "LayersJsonRequest": {**LAYERS_OK, "image": NOT_AN_IMAGE},
    "ChatCompletionRequest": CHAT_OK,
    "TaskCreateRequest": TASK_OK,
    "SynthesisRequest": SYNTH_OK,
}

Path = tuple[str | int, ...]


def _numeric_text(value: object) -> bool:
    # pydantic reads "12" as 12 where a number is due: such a string is not a wrong value.
    return isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24).filter(lambda text: not _numeric_text(text)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


class Schema:
    """The served OpenAPI document: request bodies, `$ref`s resolved."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = document["components"]["schemas"]
        self.bodies: list[tuple[str, str]] = []  # (path, schema name)
        for path, operations in document["paths"].items():
            for operation in operations.values():
                content = (operation.get("requestBody") or {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                if schema is None:
                    continue
                for ref in schema.get("oneOf", [schema]):
                    self.bodies.append((path, ref["$ref"].rsplit("/", 1)[-1]))

    def resolve(self, schema: Any, depth: int = 0) -> Any:
        if depth > 24:
            return {}
        if isinstance(schema, dict):
            if "$ref" in schema:
                return self.resolve(self.components[schema["$ref"].rsplit("/", 1)[-1]], depth + 1)
            return {k: self.resolve(v, depth + 1) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self.resolve(item, depth + 1) for item in schema]
        return schema

    def named(self, name: str) -> dict[str, Any]:
        return self.resolve(self.components[name])


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself when it lists properties (its `anyOf` then only says which of them
    are required), else the alternative of its `anyOf` that describes an object."""
    if "properties" in schema:
        return schema
    for option in schema.get("anyOf", []):
        if option.get("type") == "object" or "properties" in option:
            return option
    return schema


def _item_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "array" and isinstance(option.get("items"), dict):
            return option["items"]
    return None


def _constrained(schema: dict[str, Any]) -> bool:
    return any(key in schema for key in ("type", "enum", "anyOf", "oneOf", "const"))


def nodes(value: Any, schema: dict[str, Any], path: Path = ()) -> list[tuple[Path, dict]]:
    """Every place in `value` (present or not) whose schema refuses some values."""
    found = [(path, schema)] if path and _constrained(schema) else []
    if isinstance(value, dict):
        properties = _object_schema(schema).get("properties", {})
        for key, sub in properties.items():
            if key in value:
                found += nodes(value[key], sub, (*path, key))
            elif _constrained(sub):
                found.append(((*path, key), sub))
    elif isinstance(value, list) and (items := _item_schema(schema)) is not None:
        for index, item in enumerate(value):
            found += nodes(item, items, (*path, index))
    return found


def required(value: Any, schema: dict[str, Any], path: Path = ()) -> list[Path]:
    """Paths of required fields present in `value`."""
    found: list[Path] = []
    if isinstance(value, dict):
        object_schema = _object_schema(schema)
        for key in object_schema.get("required", []):
            if key in value:
                found.append((*path, key))
        for key, sub in object_schema.get("properties", {}).items():
            if key in value:
                found += required(value[key], sub, (*path, key))
    return found


def _set(body: Any, path: Path, value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def _delete(body: Any, path: Path) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


def _refused_by(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    validator = jsonschema.Draft202012Validator(schema)
    return JSON_VALUES.filter(lambda value: not validator.is_valid(value))


@st.composite
def broken(draw: st.DrawFn, base: dict[str, Any], schema: dict[str, Any]) -> tuple[Any, bool]:
    """(body, whether the schema refuses it)."""
    how = draw(st.sampled_from(["wrong value", "wrong value", "missing", "not an object", "text"]))
    if how == "missing" and (paths := required(base, schema)):
        return _delete(base, draw(st.sampled_from(paths))), True
    if how == "not an object":
        return draw(JSON_VALUES.filter(lambda value: not isinstance(value, dict))), True
    places = nodes(base, schema)
    if how == "text":
        texts = [(p, s) for p, s in places if "string" in json.dumps(s)]
        path, _ = draw(st.sampled_from(texts))
        return _set(base, path, draw(st.text(max_size=40))), False
    path, sub = draw(st.sampled_from(places))
    return _set(base, path, draw(_refused_by(sub))), True


@pytest.fixture(scope="module")
def schema(hosted: Hosted) -> Schema:
    return Schema(httpx.get(f"{hosted.url}/openapi.json", timeout=30).json())


@pytest.fixture(scope="module")
def client(hosted: Hosted) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hosted.url, timeout=60) as client:
        yield client


# The bodies to break, known at collection (the app's own schema); the test checks that the
# running gateway serves the same list.
BODIES = Schema(build_app(GatewaySettings()).openapi()).bodies


def test_every_served_body_is_broken_here(schema: Schema) -> None:
    assert schema.bodies == BODIES
    assert len(BODIES) >= 7
    assert {name for _, name in BODIES} <= set(BASES)


@pytest.mark.parametrize(("path", "name"), BODIES, ids=[f"{p} {n}" for p, n in BODIES])
@BOUNDED
@given(data=st.data())
def test_broken_json_bodies(
    schema: Schema, client: httpx.Client, path: str, name: str, data: st.DataObject
) -> None:
    body, refused = data.draw(broken(BASES[name], schema.named(name)), label=f"{path} {name}")
    answer = client.post(
        path,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(ASYNC if path == SYNTH else {})},
    )
    if refused:
        assert_refusal(answer, path)
    else:
        assert_answered(answer, path)


FORM_FIELDS = ["prompt", "negative_prompt", "n", "size", "width", "height", "seed", "model"]


@BOUNDED
@given(
    fields=st.dictionaries(
        st.sampled_from(FORM_FIELDS) | st.text(min_size=1, max_size=8), st.text(max_size=30)
    ),
    image=st.binary(max_size=64),
)
def test_random_multipart_edits(client: httpx.Client, fields: dict[str, str], image: bytes) -> None:
    """The image is never readable: every form is refused, whatever its fields."""
    answer = client.post(EDITS, data=fields, files=[("image", ("x.png", image, "image/png"))])
    assert_refusal(answer, EDITS)


@BOUNDED
@given(
    task_id=st.text(min_size=1, max_size=80).filter(lambda text: text not in (".", "..")),
    route=st.sampled_from(
        [("GET", "/status"), ("GET", "/result"), ("POST", "/cancel"), ("GET", "")]
    ),
)
def test_random_task_ids(client: httpx.Client, task_id: str, route: tuple[str, str]) -> None:
    method, suffix = route
    path = f"{TASKS}{urllib.parse.quote(task_id, safe='')}{suffix}"
    answer = client.request(method, path)
    if suffix:
        assert_refusal(answer, path)
    else:
        assert_answered(answer, path)
