"""The caller's deadline for the call being served, as a context variable.

The servicer sets it from `context.time_remaining()`; upstream requests, retries and task polls
read it, so no wait outlives the caller. Plug-in adapters get this for free through `upstream`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.common.errors import DeadlineExceeded

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "providers_deadline", default=None
)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Within the block, `remaining()` counts down from `seconds` (None: no deadline)."""
    at = None if seconds is None else time.monotonic() + seconds
    current = _deadline.get()
    if current is not None and (at is None or current < at):
        at = current  # an inner scope never extends the caller's deadline
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the caller's deadline, or None when it set none."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()


def budget(cap: float, what: str = "the provider") -> float:
    """`cap` seconds, or less when the deadline is nearer; DeadlineExceeded when it has passed."""
    left = remaining()
    if left is None:
        return cap
    if left <= 0.01:
        raise DeadlineExceeded(f"deadline passed while waiting for {what}")
    return min(cap, left)
