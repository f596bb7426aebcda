"""Mesh channels spread calls over every address their target resolves to (deploy/ relies on it:
the gateway targets headless Services, which resolve to one address per pod)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.channels import insecure_channel

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def start_health_server(status: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set("which", status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_calls_reach_every_resolved_backend():
    # Two backends told apart by what they answer for one service name.
    first, first_port = await start_health_server(SERVING)
    second, second_port = await start_health_server(NOT_SERVING)
    channel = insecure_channel(f"ipv4:127.0.0.1:{first_port},127.0.0.1:{second_port}")
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        seen = set()
        for _ in range(200):
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service="which"), timeout=5, wait_for_ready=True
            )
            seen.add(reply.status)
            if seen == {SERVING, NOT_SERVING}:
                break
        assert seen == {SERVING, NOT_SERVING}
    finally:
        await channel.close()
        await first.stop(None)
        await second.stop(None)
