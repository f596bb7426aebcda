"""`ApiError`: the HTTP error the gateway's own code raises, and its constructors.

A type of its own so that `validation` (which raises it for a malformed body) and `errors` (which
maps everything else to it and answers the envelope) both import it without importing each other.
"""

from __future__ import annotations

# OpenAI's `error.type` vocabulary, by HTTP status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    """An HTTP error with a message a person can act on."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "error")


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


def too_large(message: str, param: str | None = None) -> ApiError:
    return ApiError(413, message, param)
