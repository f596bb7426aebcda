"""The success envelope of every JSON answer: `code` 0, `message` "success", `created`,
`request_id` (seed 004), ahead of the endpoint's own fields."""

from __future__ import annotations

import time
from typing import Any

from services.common import requestid


def success(body: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "code": 0,
        "message": "success",
        "created": created or int(time.time()),
        "request_id": requestid.get_request_id(),
    }
    envelope.update(body)
    return envelope
