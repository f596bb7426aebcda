"""`google.protobuf.Struct` <-> plain JSON values without turning integers into floats.

A Struct keeps every number as a double, so `{"n": 2}` comes back as `{"n": 2.0}`; parameters
shown back to a client (and checks such as `isinstance(n, int)`) need the integer again.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

# Doubles represent every integer up to 2**53 exactly; past it a whole number stays a float.
_EXACT = 2**53


def plain(value: Any) -> Any:
    """`value` with whole-number floats (within double precision) as ints, recursively."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The Struct as a dict, integers as ints."""
    return dict(plain(json_format.MessageToDict(struct)))
