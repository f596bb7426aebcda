"""gRPC status -> HTTP envelope (DESIGN.md's table), and the model catalogue's answers."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from services.gateway.catalog import Catalog, CatalogError
from services.gateway.errors import from_rpc_error
from services.gateway.settings import DEFAULT_CATALOG


def rpc_error(code: grpc.StatusCode, details: str, trailing: Metadata | None = None) -> AioRpcError:
    return AioRpcError(code, Metadata(), trailing or Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.FAILED_PRECONDITION, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.ABORTED, 502),
        (grpc.StatusCode.INTERNAL, 502),
    ],
)
def test_status_table(code: grpc.StatusCode, status: int) -> None:
    assert from_rpc_error(rpc_error(code, "why"), "qwen-image", 2).status == status


def test_unavailable_names_the_model_not_the_address() -> None:
    err = from_rpc_error(
        rpc_error(
            grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; 10.0.0.7:50051"
        ),
        "qwen-image",
        2,
    )
    assert err.message == "qwen-image is unavailable; try again shortly"


def test_retry_after_from_the_backend_or_the_default() -> None:
    busy = rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full: 8 waiting")
    assert from_rpc_error(busy, "qwen-image", 2).headers["Retry-After"] == "2"
    hinted = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited", Metadata(("retry-after", "7"))
    )
    assert from_rpc_error(hinted, "wanx2.1-t2i-turbo", 2).headers["Retry-After"] == "7"


def test_grpc_message_cap_is_413_not_429() -> None:
    err = from_rpc_error(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (1 vs 2)"),
        "qwen-image-edit",
        2,
    )
    assert err.status == 413


def test_catalogue_routes_and_refuses() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    assert catalog.resolve("aliyun/aliyun/qwen-image-plus", "image").backend == "qwen_image"
    assert catalog.resolve(None, "edit").name == "qwen-image-edit"
    assert catalog.resolve("gpt-image-1", "edit").provider == "openai"
    with pytest.raises(Exception) as caught:
        catalog.resolve("nope", "image")
    assert caught.value.status == 404 and "qwen-image" in caught.value.message  # type: ignore[attr-defined]
    with pytest.raises(Exception) as caught:
        catalog.resolve("qwen-image", "chat")
    assert caught.value.status == 400  # type: ignore[attr-defined]


def test_a_bad_catalogue_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("models:\n  - {name: a, backend: nowhere, kinds: [image]}\n")
    with pytest.raises(CatalogError, match="invalid"):
        Catalog.load(path)


def test_a_finished_task_cancel_is_the_clients_400_not_a_503() -> None:
    """The tasks service marks its FAILED_PRECONDITION with a reason; the one table maps it."""
    finished = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        "task 1 has already finished (succeeded); only a queued or running task can be canceled",
        Metadata(("imagemesh-reason", "task-finished")),
    )
    err = from_rpc_error(finished, "the task service", 2)
    assert err.status == 400 and err.message.startswith("task 1 has already finished")
    other = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION, "set X", Metadata(("imagemesh-reason", "other"))
    )
    assert from_rpc_error(other, "wanx", 2).status == 503
