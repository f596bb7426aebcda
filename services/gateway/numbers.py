"""Number fields that take numbers only. pydantic's lax mode reads `true` / `false` as 1 / 0
where an integer or a float is due; JSON Schema (and so the gateway's /openapi.json) refuses
them, and a person who sent `"n": true` meant something the gateway cannot guess."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _not_a_truth_value(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is due here, not true or false")
    return value


Int = Annotated[int, BeforeValidator(_not_a_truth_value)]
Float = Annotated[float, BeforeValidator(_not_a_truth_value)]
