"""`imagemesh.v1.ModelServer`: what a model server runs with, for the gateway's /v1/models, and
how much work it has now, for the gateway's routing.

Thin: `Describe` answers `Acceleration.describe()` of the server's settings, fixed at start-up;
`Load` answers the job queue's numbers and the server's health (`services/modelserver/load.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from imagemesh.v1 import common_pb2, common_pb2_grpc

from services.modelserver.acceleration import Acceleration, AccelerationSettings

LoadReport = Callable[[], common_pb2.LoadResponse]


class ModelServerInfoServicer(common_pb2_grpc.ModelServerServicer):
    def __init__(self, settings: AccelerationSettings, load: LoadReport | None = None) -> None:
        self._info = common_pb2.ModelServerInfo(**Acceleration(settings).describe())
        self._load = load

    async def Describe(  # noqa: N802 - the gRPC method name
        self, request: common_pb2.DescribeModelServerRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ModelServerInfo:
        return self._info

    async def Load(  # noqa: N802 - the gRPC method name
        self, request: common_pb2.LoadRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.LoadResponse:
        if self._load is None:
            return common_pb2.LoadResponse()
        return self._load()


def add_info_servicer(
    settings: AccelerationSettings, server: grpc.aio.Server, load: LoadReport | None = None
) -> None:
    common_pb2_grpc.add_ModelServerServicer_to_server(
        ModelServerInfoServicer(settings, load), server
    )
