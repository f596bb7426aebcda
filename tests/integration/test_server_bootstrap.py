"""The shared server bootstrap: health, reflection, request ids, error mapping, metrics, drain."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from services.common import requestid
from services.common.errors import InvalidArgument
from services.common.server import MeshServer
from services.common.settings import ServerSettings
from tests.support.waiting import eventually

SERVICE = "test.Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"bad":
        raise InvalidArgument("payload: 'bad' is not allowed; send anything else")
    if request == b"boom":
        raise RuntimeError("secret internals")
    if request.startswith(b"sleep"):
        await asyncio.sleep(float(request[5:]))
    return requestid.get_request_id().encode()


async def _count(request: bytes, context: grpc.aio.ServicerContext):
    for i in range(int(request)):
        yield str(i).encode()
    raise InvalidArgument("stream stopped on purpose")


def _handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity),
            "Count": grpc.unary_stream_rpc_method_handler(_count, _identity, _identity),
        },
    )


@pytest.fixture
async def server():
    server = MeshServer(ServerSettings(listen="127.0.0.1:0", shutdown_grace_seconds=5), [SERVICE])
    server.grpc.add_generic_rpc_handlers([_handler()])
    await server.start()
    yield server
    await server.stop(0)


async def test_health_is_not_serving_until_ready(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        before = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        await server.set_serving()
        after = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert after.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for response in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in response.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_request_id_is_taken_from_the_client_and_echoed(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Echo")(
            b"hi", metadata=(("x-request-id", "abc123"),)
        )
        body = await call
        initial = await call.initial_metadata()
    assert body == b"abc123"
    assert ("x-request-id", "abc123") in tuple(initial)


async def test_request_id_goes_back_with_the_answer_when_calls_are_not_announced() -> None:
    quiet = MeshServer(
        ServerSettings(listen="127.0.0.1:0", shutdown_grace_seconds=5), [SERVICE], False
    )
    quiet.grpc.add_generic_rpc_handlers([_handler()])
    await quiet.start()
    try:
        async with grpc.aio.insecure_channel(quiet.address) as channel:
            call = channel.unary_unary(f"/{SERVICE}/Echo")(
                b"hi", metadata=(("x-request-id", "abc123"),)
            )
            body = await call
            initial = tuple(await call.initial_metadata())
            trailing = tuple(await call.trailing_metadata())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(f"/{SERVICE}/Echo")(
                    b"bad", metadata=(("x-request-id", "r2"),)
                )
    finally:
        await quiet.stop(0)
    assert body == b"abc123"
    assert ("x-request-id", "abc123") in trailing
    assert not any(key == "x-request-id" for key, _ in initial)
    # A refused call carries it too.
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("x-request-id", "r2") in tuple(err.value.trailing_metadata() or ())


async def test_request_id_is_created_when_missing(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        body = await channel.unary_unary(f"/{SERVICE}/Echo")(b"hi")
    assert len(body) == 32 and body != b"-"


async def test_service_error_becomes_its_status(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(f"/{SERVICE}/Echo")(b"bad")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'bad' is not allowed" in err.value.details()


async def test_unexpected_error_is_internal_without_internals(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(f"/{SERVICE}/Echo")(
                b"boom", metadata=(("x-request-id", "r1"),)
            )
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in err.value.details()
    assert "r1" in err.value.details()


async def test_stream_error_after_messages(server: MeshServer) -> None:
    received = []
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for item in channel.unary_stream(f"/{SERVICE}/Count")(b"3"):
                received.append(item)
    assert received == [b"0", b"1", b"2"]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_metrics_count_calls_by_code(server: MeshServer) -> None:
    method = f"/{SERVICE}/Echo"
    labels = {"method": method, "code": "INVALID_ARGUMENT"}
    before = REGISTRY.get_sample_value("imagemesh_grpc_requests_total", labels) or 0
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary(method)(b"bad")
    assert REGISTRY.get_sample_value("imagemesh_grpc_requests_total", labels) == before + 1


async def test_stop_lets_an_in_flight_call_finish(server: MeshServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Echo")(b"sleep0.5")
        await eventually(
            lambda: REGISTRY.get_sample_value(
                "imagemesh_grpc_in_flight", {"method": f"/{SERVICE}/Echo"}
            ),
            10,
            "the server holding the call",
        )
        await server.stop(grace=5)
        assert len(await call) == 32
