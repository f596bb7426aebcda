"""A strict reader of server-sent events (the WHATWG event-stream format), for tests.

Every line must be a field (`event:`, `data:`, `id:`, `retry:`), a comment (`:`), or the blank line
that ends an event; anything else fails the test, so a stream that only looks like SSE does not
pass. Each event's data must be JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    event: str  # "message" when the stream named none
    data: dict[str, Any]


def parse(text: str) -> list[Event]:
    assert text.endswith("\n\n"), f"the stream does not end with a blank line: {text[-80:]!r}"
    events: list[Event] = []
    name, data = "", []
    for line in text.split("\n")[:-1]:
        if line == "":
            assert data, "an event without data"
            events.append(Event(name or "message", json.loads("\n".join(data))))
            name, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, sep, value = line.partition(":")
            assert sep and field in ("event", "data", "id", "retry"), f"not an SSE line: {line!r}"
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    return events
