"""`imagemesh.v1.ModelServer`: what a model server runs with, for the gateway's /v1/models, and
how much work it has now, for the gateway's routing.

Thin: `Describe` answers `Acceleration.describe()` of the server's settings, fixed at start-up,
and the LoRA adapters of its LORA_DIR as they are now (`loras.py`: listed on every call, broken
ones marked unavailable) and the ControlNets it loaded (`controlnets.py`); `Load` answers the job queue's numbers and the server's health
(`services/modelserver/load.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from imagemesh.v1 import common_pb2, common_pb2_grpc

from services.modelserver.acceleration import Acceleration, AccelerationSettings
from services.modelserver.controlnets import ControlEntry
from services.modelserver.loras import LoraEntry

LoadReport = Callable[[], common_pb2.LoadResponse]
LoraListing = Callable[[], list[LoraEntry]]
ControlNetListing = Callable[[], list[ControlEntry]]


class ModelServerInfoServicer(common_pb2_grpc.ModelServerServicer):
    def __init__(
        self,
        settings: AccelerationSettings,
        load: LoadReport | None = None,
        loras: LoraListing | None = None,
        controlnets: ControlNetListing | None = None,
    ) -> None:
        self._info = common_pb2.ModelServerInfo()
        for field, value in Acceleration(settings).describe().items():
            setattr(self._info, field, value)
        for name in ("max_loras_per_request", "max_loaded_loras"):
            if hasattr(settings, name):  # a model server's settings (not bare switches)
                setattr(self._info, name, getattr(settings, name))
        self._load = load
        self._loras = loras
        self._controlnets = controlnets

    async def Describe(  # noqa: N802 - the gRPC method name
        self, request: common_pb2.DescribeModelServerRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ModelServerInfo:
        if self._loras is None and self._controlnets is None:
            return self._info
        info = common_pb2.ModelServerInfo()
        info.CopyFrom(self._info)
        info.loras.extend(
            common_pb2.LoraInfo(
                name=entry.name, available=entry.available, reason=entry.reason, loaded=entry.loaded
            )
            for entry in (self._loras() if self._loras else [])
        )
        info.controlnets.extend(
            common_pb2.ControlNetInfo(name=net.name, kind=net.kind, location=net.location)
            for net in (self._controlnets() if self._controlnets else [])
        )
        return info

    async def Load(  # noqa: N802 - the gRPC method name
        self, request: common_pb2.LoadRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.LoadResponse:
        if self._load is None:
            return common_pb2.LoadResponse()
        return self._load()


def add_info_servicer(
    settings: AccelerationSettings,
    server: grpc.aio.Server,
    load: LoadReport | None = None,
    loras: LoraListing | None = None,
    controlnets: ControlNetListing | None = None,
) -> None:
    common_pb2_grpc.add_ModelServerServicer_to_server(
        ModelServerInfoServicer(settings, load, loras, controlnets), server
    )
