"""`ApiError`: the HTTP error the gateway's own code raises, and its constructors.

A type of its own so that `validation` (which raises it for a malformed body) and `errors` (which
maps everything else to it and answers the envelope) both import it without importing each other.
"""

from __future__ import annotations

# OpenAI's `error.type` vocabulary, by HTTP status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
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


# OpenAI's `error.code` (a string or null in its schema), by HTTP status; the envelope's own
# top-level `code` stays the HTTP status (the interface standard's number).
ERROR_CODES = {
    400: "invalid_value",
    401: "invalid_api_key",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """An HTTP error with a message a person can act on."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}
        self._code = code

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "error")

    @property
    def code(self) -> str | None:
        """OpenAI's string code: given, else by status (`model_not_found` for a model's 404)."""
        if self._code is not None:
            return self._code
        if self.status == 404 and self.param == "model":
            return "model_not_found"
        return ERROR_CODES.get(self.status)


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


def too_large(message: str, param: str | None = None) -> ApiError:
    return ApiError(413, message, param)
