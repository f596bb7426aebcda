"""A JSON answer whose base64 images are sent as they are, not copied into one body.

n=4 images at 1328x1328 are about 28 MB of base64. A plain JSONResponse renders the whole answer
into a str and then into bytes: two more copies of every image, and the gateway's memory peaks
at about five times the payload. Here the answer is rendered with each large `b64_json` value
swapped for a placeholder; the small JSON around them is sent in pieces, and each image's base64
in between (encoded to bytes one at a time). The Content-Length is known beforehand, since base64
is ASCII: one character, one byte.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

# Values smaller than this go into the JSON text like any other.
LARGE = 64 * 1024


def _swap(value: Any, token: str, large: list[str], key: str = "") -> Any:
    """A copy of `value` (dicts and lists only) with each large `b64_json` string replaced."""
    if isinstance(value, dict):
        return {k: _swap(v, token, large, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, token, large) for v in value]
    if key == "b64_json" and isinstance(value, str) and len(value) >= LARGE and value.isascii():
        large.append(value)
        return f"{token}{len(large) - 1}"
    return value


class PiecewiseJSONResponse(JSONResponse):
    def __init__(
        self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        large: list[str] = []
        token = f"b64-{uuid.uuid4().hex}-"
        text = json.dumps(
            _swap(content, token, large),
            ensure_ascii=False,
            allow_nan=False,
            indent=None,
            separators=(",", ":"),
        )
        self._pieces: list[bytes | str] = []
        for index, value in enumerate(large):
            before, _, text = text.partition(f"{token}{index}")
            self._pieces += [before.encode("utf-8"), value]
        self._pieces.append(text.encode("utf-8"))
        length = sum(len(piece) for piece in self._pieces)
        super().__init__(None, status_code, {**(headers or {}), "content-length": str(length)})

    def render(self, content: Any) -> bytes:
        return b""  # the body is sent piece by piece

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self._pieces) - 1
        for index, piece in enumerate(self._pieces):
            body = piece.encode("ascii") if isinstance(piece, str) else piece
            await send({"type": "http.response.body", "body": body, "more_body": index < last})
        if self.background is not None:
            await self.background()
