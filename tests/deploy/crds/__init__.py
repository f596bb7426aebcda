"""The custom resources our components use, validated against their CRDs' vendored schemas.

`kubernetes-validate` knows only the built-in kinds; a KEDA `ScaledObject` or a Prometheus
operator `ServiceMonitor` is checked here against the CRD's published openAPIV3Schema, made
strict and vendored next to this file by `vendor.py` (nothing is fetched at test time).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

HERE = Path(__file__).resolve().parent


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return f"{group}_{obj['kind'].lower()}_{version}", group


@functools.cache
def _validator(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((HERE / f"{name}.json").read_text()))


def is_custom(obj: dict[str, Any]) -> bool:
    """Not a built-in kind: a group with a dot that is not one of Kubernetes' own."""
    _, group = _key(obj)
    return "." in group and not group.endswith(".k8s.io")


def custom_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a custom resource; one naming the missing schema if none is vendored."""
    name, _ = _key(obj)
    if not (HERE / f"{name}.json").exists():
        return [f"no vendored schema for {obj['apiVersion']} {obj['kind']} (tests/deploy/crds)"]
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.path))
    return [f"{'.'.join(str(p) for p in error.path)}: {error.message}" for error in errors]
