"""Unknown request fields: ignored, as OpenAI's SDK expects of a server (it sends fields a server
may not know), except the ones that look like one of ours misspelled.

A field the request model does not know is a misspelling when its name is close to one of the
model's own fields (difflib's ratio at least `CUTOFF`, case and `-` ignored):
`negative_promt`, `num_inference_step`, `output_formt`, `true_cfg`, `seeds`, `guidance`... are
answered 400 "did you mean ...?", since ignoring them would silently answer something other than
what was asked. Names OpenAI's image API defines that we do not act on (`user`, `moderation`,
`style`) are never flagged.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from services.gateway.errors import ApiError

CUTOFF = 0.8
# OpenAI's own image fields with nothing to do here: ignored, whatever they look like.
IGNORED = frozenset({"user", "moderation", "style", "stream_options"})


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def suggestion(name: str, known: Iterable[str]) -> str | None:
    """The known field `name` looks like a misspelling of, if any."""
    if name in IGNORED:
        return None
    by_key = {_key(field): field for field in known}
    if _key(name) in by_key:  # ours, written with capitals or dashes: still not read
        return None if by_key[_key(name)] == name else by_key[_key(name)]
    close = difflib.get_close_matches(_key(name), list(by_key), n=1, cutoff=CUTOFF)
    return by_key[close[0]] if close else None


def check_names(
    body: Any, model: type[BaseModel], prefix: str = "", also: Iterable[str] = ()
) -> None:
    """A 400 naming the first field of `body` that misspells one of `model`'s (or `also`)."""
    if not isinstance(body, dict):
        return
    known = {*model.model_fields, *also}
    for name in body:
        if not isinstance(name, str) or name in known:
            continue
        meant = suggestion(name, known)
        if meant is not None:
            raise ApiError(
                400,
                f"unknown field {prefix}{name}: did you mean {prefix}{meant}? "
                "(fields we do not know are ignored, but this one looks like ours misspelled)",
                f"{prefix}{name}",
                code="unknown_parameter",
            )
