"""Server-sent events of an upstream stream, read as they arrive, a network read at a time.

`sse_batches` yields the JSON payloads of the complete events one read of the body brought
(`data: <json>` ... `data: [DONE]`), together: an upstream that is ahead of us (several chunks
already waiting in the socket) is relayed in one step instead of one step per chunk, which is
where a stream's cost went (each chunk was a gRPC message and an HTTP write of its own). A
`data: {"error": ...}` event ends the stream with the error it stands for, after the events
before it. Comments (`:` keep-alives), `event:` and `id:` lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from services.common.errors import ProviderFailed, ServiceError
from services.providers.upstream import Upstream

_DONE = b"[DONE]"


async def sse_batches(
    response: httpx.Response,
    upstream: Upstream,
    error_of: Callable[[Upstream, Any], ServiceError],
) -> AsyncIterator[list[dict[str, Any]]]:
    """Lists of event payloads (dicts), one list per read that completed at least one event."""
    pending = b""
    try:
        async for piece in response.aiter_bytes():
            pending += piece
            if b"\r" in pending:
                # CRLF and lone CR end lines too; a CR last may be half of a CRLF still to come.
                keep = pending.endswith(b"\r")
                pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if keep:
                    pending = pending[:-1] + b"\r"
            *blocks, pending = pending.split(b"\n\n")
            if not blocks:
                continue
            events: list[dict[str, Any]] = []
            for block in blocks:
                payload = _data_of(block)
                if payload is None:
                    continue
                if payload.strip() == _DONE:
                    if events:
                        yield events
                    return
                event = _parse(payload, upstream)
                if isinstance(event, dict) and event.get("error"):
                    if events:
                        yield events
                    raise error_of(upstream, event["error"])
                if isinstance(event, dict):
                    events.append(event)
            if events:
                yield events
    except httpx.TransportError as exc:
        raise upstream.transport_error(exc) from exc


def _data_of(block: bytes) -> bytes | None:
    """The data of one event block (its `data:` lines joined by newlines); None without any."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]  # the usual one-line event, without splitting
    lines = [
        line.partition(b":")[2].removeprefix(b" ")
        for line in block.split(b"\n")
        if line.partition(b":")[0] == b"data"
    ]
    return b"\n".join(lines) if lines else None


def _parse(payload: bytes, upstream: Upstream) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise ProviderFailed(
            f"{upstream.label} sent an unreadable stream event: {payload[:200]!r}"
        ) from exc
