"""Every failure the gateway answers, as one envelope: `{code, message, request_id, error}`.

`ApiError` is what the gateway's own code raises (status, a message naming the field and what is
allowed, the field as `param`). gRPC errors from backends, `ServiceError`s, FastAPI's validation
errors, malformed JSON and `HTTPException`s are all mapped to it here, so both envelope readers
(`code`, `message`) and the OpenAI SDK (`error.message`) show the same text. Anything unexpected is
a 500 with the request id only: the traceback goes to the log, never to the client.

gRPC status -> HTTP (DESIGN.md): INVALID_ARGUMENT/OUT_OF_RANGE 400, NOT_FOUND 404,
RESOURCE_EXHAUSTED 429 (+ Retry-After), UNAVAILABLE 503, DEADLINE_EXCEEDED 504.
FAILED_PRECONDITION is 503: the backend cannot serve this model in its current state (a provider
key not set, a pipeline that lacks a feature's weights); the client did nothing wrong, the
operator must act, and retrying after they do succeeds. A service that means something else by a
code says why in the trailing metadata `imagemesh-reason`, and `REASONS` refines the table for
it: the tasks service's `task-finished` (cancel of a task that has ended) is the client's
mistake, 400 (DashScope's UnsupportedOperation); the storage service's `link-refused` (a link
into our bucket that is forged or expired) is 403. INTERNAL/UNKNOWN/DATA_LOSS from a backend
is 502: the gateway itself worked, the service behind it (a provider) failed.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common import requestid
from services.common.errors import ServiceError
from services.gateway.apierror import ApiError, invalid, too_large
from services.gateway.disconnect import ClientGone
from services.gateway.validation import explain

# Importers of the gateway's errors take ApiError and its helpers from here too.
__all__ = [
    "GRPC_TO_HTTP",
    "REASONS",
    "ApiError",
    "describe_validation",
    "error_body",
    "error_response",
    "from_rpc_error",
    "from_service_error",
    "install",
    "invalid",
    "too_large",
]

log = logging.getLogger("imagemesh.gateway")

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 502,
    grpc.StatusCode.PERMISSION_DENIED: 502,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.ABORTED: 502,
    grpc.StatusCode.INTERNAL: 502,
    grpc.StatusCode.UNKNOWN: 502,
    grpc.StatusCode.DATA_LOSS: 502,
}
# (code, the service's `imagemesh-reason`) -> HTTP, where the reason changes what the code means.
REASON_KEY = "imagemesh-reason"
REASONS: dict[tuple[grpc.StatusCode, str], int] = {
    (grpc.StatusCode.FAILED_PRECONDITION, "task-finished"): 400,
    # Storage.Get refusing a link into our bucket that it did not issue or that has expired.
    (grpc.StatusCode.PERMISSION_DENIED, "link-refused"): 403,
}


def from_service_error(exc: ServiceError) -> ApiError:
    return ApiError(GRPC_TO_HTTP.get(exc.code, 500), exc.message)


def from_rpc_error(
    exc: grpc.aio.AioRpcError, what: str, retry_after: int, param: str | None = None
) -> ApiError:
    """Maps a backend's gRPC error; `what` names the model or service for the message."""
    code = exc.code()
    details = exc.details() or ""
    status = REASONS.get((code, _trailer(exc, REASON_KEY) or ""), GRPC_TO_HTTP.get(code, 502))
    headers: dict[str, str] = {}
    if code == grpc.StatusCode.UNAVAILABLE:
        # A refused connection says "failed to connect to all addresses ...": internal addresses
        # are for the log, the client learns which model is down.
        if _is_connect_failure(details):
            message = f"{what} is unavailable; try again shortly"
        else:
            message = f"{what} is unavailable: {details}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"{what} did not answer within the deadline; try a smaller or simpler request"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        # gRPC's own message cap, not a full queue.
        status, message = 413, f"the request or answer is too large for {what}: {details}"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        headers["Retry-After"] = str(_retry_after(exc) or retry_after)
        message = f"{what} is busy: {details}" if details else f"{what} is busy; retry later"
    elif status in (400, 403, 404, 409, 501):
        message = details or f"{what} refused the request ({code.name})"
    elif status == 503:
        message = (
            f"{what} cannot serve this now: {details}" if details else f"{what} is unavailable"
        )
    elif status == 502:
        message = f"{what} failed: {details}" if details else f"{what} failed ({code.name})"
    else:
        message = details or code.name
    if status >= 500:
        log.warning("%s answered %s: %s", what, code.name, details)
    return ApiError(status, message, param, headers)


def _is_connect_failure(details: str) -> bool:
    lowered = details.lower()
    return "failed to connect" in lowered or "connection refused" in lowered or "dns" in lowered


def _trailer(exc: grpc.aio.AioRpcError, name: str) -> str | None:
    for key, value in exc.trailing_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


def _retry_after(exc: grpc.aio.AioRpcError) -> int | None:
    """A backend may send `retry-after` (seconds) in its trailing metadata."""
    value = _trailer(exc, "retry-after")
    if value is None:
        return None
    try:
        return max(1, int(float(value)))
    except ValueError:
        return None


def error_body(err: ApiError) -> dict[str, Any]:
    return {
        "code": err.status,
        "message": err.message,
        "request_id": requestid.get_request_id(),
        "error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code},
    }


def error_response(err: ApiError) -> JSONResponse:
    headers = {**err.headers, "X-Request-ID": requestid.get_request_id()}
    return JSONResponse(error_body(err), status_code=err.status, headers=headers)


def describe_validation(errors: list[Any]) -> ApiError:
    """Pydantic / FastAPI validation errors -> one 400 naming each field and what it allows."""
    message, param = explain(errors)
    return invalid(message, param)


def install(app: FastAPI) -> None:
    """Registers the handlers that turn every failure into the envelope."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(from_service_error(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(describe_validation(list(exc.errors())))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        elif exc.status_code == 400 and "parsing the body" in message:
            message = "the request body could not be read: send JSON or multipart form data"
        err = ApiError(exc.status_code, message, headers=dict(exc.headers or {}))
        return error_response(err)

    async def client_gone(_: Request, exc: Exception) -> JSONResponse:
        # Nobody reads this; 499 (nginx's "client closed request") keeps the metrics honest.
        return error_response(ApiError(499, "the client disconnected before the answer"))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        rid = requestid.get_request_id()
        return error_response(ApiError(500, f"internal error; request id {rid}"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientGone, client_gone)
    app.add_exception_handler(Exception, unexpected)
