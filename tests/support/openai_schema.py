"""Validates an answer against OpenAI's vendored schemas (tests/schemas/openai/images.json)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).resolve().parents[1] / "schemas" / "openai" / "images.json"
URI = "urn:openai-openapi"


@cache
def _registry() -> Registry:  # type: ignore[type-arg]
    document = json.loads(DOCUMENT.read_text())
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(URI, resource)


def errors(instance: Any, schema: str) -> list[str]:
    """Every way `instance` breaks `schema` (a name under components.schemas), as text."""
    validator = Draft202012Validator(
        {"$ref": f"{URI}#/components/schemas/{schema}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def check(instance: Any, schema: str) -> None:
    found = errors(instance, schema)
    assert not found, f"not a valid {schema}: {found}"
