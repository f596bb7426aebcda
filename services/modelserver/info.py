"""`imagemesh.v1.ModelServer`: what a model server runs with, for the gateway's /v1/models.

Thin: the answer is `Acceleration.describe()` of the server's settings, fixed at start-up.
"""

from __future__ import annotations

import grpc
from imagemesh.v1 import common_pb2, common_pb2_grpc

from services.modelserver.acceleration import Acceleration, AccelerationSettings


class ModelServerInfoServicer(common_pb2_grpc.ModelServerServicer):
    def __init__(self, settings: AccelerationSettings) -> None:
        self._info = common_pb2.ModelServerInfo(**Acceleration(settings).describe())

    async def Describe(  # noqa: N802 - the gRPC method name
        self, request: common_pb2.DescribeModelServerRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ModelServerInfo:
        return self._info


def add_info_servicer(settings: AccelerationSettings, server: grpc.aio.Server) -> None:
    common_pb2_grpc.add_ModelServerServicer_to_server(ModelServerInfoServicer(settings), server)
