"""Values every task database keeps: U+0000 dropped from strings (PostgreSQL's text and JSONB
refuse it) and NaN or Infinity as null (not JSON: SQLite kept it, and every later answer about the
task failed on it). The store applies it to what it writes; answers apply it to rows stored before.
"""

from __future__ import annotations

import math
from typing import Any


def storable(value: Any) -> Any:
    """`value` without U+0000 in its strings and with null for NaN and Infinity, recursively."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
