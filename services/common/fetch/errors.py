"""The one error the fetcher raises: `FetchFailed`, an INVALID_ARGUMENT that says what went wrong
and why (`reason`), so each caller can answer in its own terms (storage and the gateway: 400 or
413; the providers: a failed provider when the URL was the provider's own)."""

from __future__ import annotations

from typing import Literal

from services.common.errors import InvalidArgument

Reason = Literal[
    "refused",  # the policy: a scheme, host or address that may not be fetched
    "unreachable",  # no answer: DNS, connection or transfer failure
    "status",  # an HTTP error status (see `status`)
    "redirects",  # more redirects than allowed
    "timeout",  # the whole download took too long
    "too_large",  # the body passed the byte cap
    "not_image",  # wrong Content-Type, empty body, or bytes Pillow cannot read as an image
]


class FetchFailed(InvalidArgument):
    """`message` is "<field>: <detail>"; `detail` alone reads well after another prefix."""

    def __init__(self, field: str, detail: str, reason: Reason, status: int = 0) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail
        self.reason: Reason = reason
        self.status = status  # the HTTP status when reason == "status"
