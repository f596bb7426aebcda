"""A `b64_json` answer written while its images arrive (issue 18 §2).

The answer is the same JSON document as `PiecewiseJSONResponse` sends (byte for byte, for the
same outcome), but no image waits for the next: the head goes out with the first image, then each
image's base64 (made from its bytes, sent, dropped), then the small text up to the next image, and
the tail (usage, output fields) after the last. So the gateway holds about one image's message and
its base64 at a time, not the batch and all its base64 (n=4 at 1328x1328: 14 MB of PNG).

The text between images comes from the endpoint's own answer function (`openai_answer`,
`dashscope_answer`), rendered with a placeholder for each image's base64: in both shapes, what
comes before image i's base64 depends only on the images before it, so it is known when image i
arrives. The length is not known beforehand: the answer is sent chunked, without Content-Length.

Errors: `deliver_arriving` waited for the first image, so a failure before it was answered with
the ordinary error envelope. One after the head was sent (the model server dies between images)
cannot change the status any more: the answer is cut short (the connection is closed without the
last chunk), so no client takes a partial document for a whole one, and the error is logged.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.gateway.arriving import ArrivingOutcome
from services.gateway.delivery import Delivered
from services.gateway.errors import ApiError
from services.gateway.outcome import Outcome
from services.gateway.piecewise import PiecewiseJSONResponse

log = logging.getLogger("imagemesh.gateway")


class StreamedJSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        answer: ArrivingOutcome,
        render: Callable[[Outcome], dict[str, Any]],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._answer = answer
        self._render = render
        self._token = f"b64-{uuid.uuid4().hex}-"
        super().__init__(None, 200, headers)
        # Response counts an empty body as Content-Length 0; this one's length is not known yet.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]

    def _placeholder(self, index: int) -> str:
        return f"{self._token}{index:06d}"  # fixed width: no placeholder is a prefix of another

    def _text(self, known: list[Delivered], total: int) -> str:
        """The answer with `known` images and placeholders for the rest."""
        images = known + [
            Delivered(b64_json=self._placeholder(i)) for i in range(len(known), total)
        ]
        return json.dumps(
            self._render(replace(self._answer.outcome, images=images)),
            ensure_ascii=False,
            allow_nan=False,
            indent=None,
            separators=(",", ":"),
        )

    def _before(self, known: list[Delivered], total: int) -> bytes:
        """The text between the last image written and image len(known) - 1's base64."""
        text = self._text(known, total)
        end = text.index(self._placeholder(len(known) - 1))
        start = 0
        if len(known) > 1:
            last = self._placeholder(len(known) - 2)
            start = text.index(last) + len(last)
        return text[start:end].encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answer
        known: list[Delivered] = []
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            # Taken from the answer, so this image's message is dropped once it is written.
            arrival, answer.first = answer.first, None
            rest = aiter(answer.rest)
            while arrival is not None:
                image = arrival.image
                known.append(
                    Delivered(
                        b64_json=self._placeholder(arrival.index),
                        width=image.width,
                        height=image.height,
                        seed=image.seed,
                    )
                )
                total = max(arrival.total, len(known))
                head = self._before(known, total)
                await send({"type": "http.response.body", "body": head, "more_body": True})
                body = base64.b64encode(image.data)
                del arrival, image  # this image's message can go while its base64 is sent
                await send({"type": "http.response.body", "body": body, "more_body": True})
                del body
                arrival = await anext(rest, None)
            text = self._text(known, len(known))
            last = self._placeholder(len(known) - 1)
            tail = text[text.index(last) + len(last) :].encode("utf-8")
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except (ApiError, OSError) as exc:
            # The status went out with the head: the answer can only be cut short.
            message = exc.message if isinstance(exc, ApiError) else repr(exc)
            log.warning("answer cut short after %d image(s): %s", len(known), message)
        finally:
            await answer.aclose()


def json_answer(
    answer: Outcome | ArrivingOutcome, render: Callable[[Outcome], dict[str, Any]]
) -> Response:
    """The answer of an image call: streamed while its images arrive, or whole (`url`, hosted)."""
    if isinstance(answer, Outcome):
        timing = {"Server-Timing": answer.server_timing()}
        return PiecewiseJSONResponse(render(answer), headers=timing)
    return StreamedJSONResponse(
        answer, render, headers={"Server-Timing": answer.outcome.server_timing()}
    )
