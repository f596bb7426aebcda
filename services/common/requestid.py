"""The request id of the call being served, as a context variable.

The server interceptor sets it from the `x-request-id` metadata (or creates one); the logging filter
puts it on every log line; clients pass it on in their own metadata. `asyncio.to_thread` copies the
context, so work run in a thread logs the same id.
"""

from __future__ import annotations

import contextvars
import uuid

METADATA_KEY = "x-request-id"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_request_id() -> str:
    return uuid.uuid4().hex


def get_request_id() -> str:
    return _current.get()


def set_request_id(value: str) -> contextvars.Token[str]:
    return _current.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _current.reset(token)


def from_metadata(metadata: object) -> str:
    """The client's `x-request-id`, when it sent a sane one; a new id otherwise."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == METADATA_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return new_request_id()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current request id to the next service."""
    return ((METADATA_KEY, get_request_id()),)
