"""Exceptions that carry a gRPC status code.

Plain Python classes raise these with a message a person can act on; the server interceptor
(`services.common.interceptors`) aborts the call with the matching status. The gateway alone maps
gRPC codes to HTTP.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base class: an error whose message is safe and useful to show to the caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ServiceError):
    code = grpc.StatusCode.CANCELLED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ProviderFailed(ServiceError):
    """A hosted provider took the request and failed it (task FAILED, upstream error).

    ABORTED is never produced by the gRPC library itself, so it means exactly this; the gateway
    answers it with HTTP 502.
    """

    code = grpc.StatusCode.ABORTED
